#[automatically_derived]
impl ::kaal_dddk::Probe for VirtioBlk {
    const METADATA: ::kaal_dddk::DriverMetadata = ::kaal_dddk::DriverMetadata {
        name: "virtio-blk",
        compatible: &["virtio,mmio"],
        pci: &[(0x1af4, 0x1001), (0x1af4, 0x1042)],
        mmio: 3,
        irqs: 4,
        dma: &[65536, 4096],
    };
    fn probe(
        resources: &mut ::kaal_dddk::Resources,
    ) -> ::core::result::Result<Self, ::kaal_dddk::DriverError> {
        ::core::result::Result::Ok(Self {
            notify: resources.mmio(2)?,
            common: resources.mmio(0)?,
            device: resources.mmio(1)?,
            requests: ::core::default::Default::default(),
            queue: resources.irq(2)?,
            config: resources.irq(3)?,
            ring: resources.dma(65536)?,
            scratch: resources.dma(4096)?,
            name: ::core::default::Default::default(),
        })
    }
}
/// The metadata of driver `virtio-blk`, for `kaal_build::driver::read_metadata` to find in the binary.
#[doc(hidden)]
#[used]
static __KAAL_DRIVER_METADATA_VIRTIO_BLK: [u8; 68] = *b"KAALDRV1\x01\0\0\0D\0\0\0\nvirtio-blk\x01\x0Bvirtio,mmio\x02\xF4\x1A\x01\x10\xF4\x1AB\x10\x03\x04\x02\0\0\x01\0\0\0\0\0\0\x10\0\0\0\0\0\0";
