//! Disk images with a FAT file system, for a system's virtio-blk disk.
//!
//! [`ensure_fat_image`] makes a raw disk image that a KaaL file server built on
//! `embedded-sdmmc` mounts and that the host's tools read: a master boot record with one
//! partition starting at 1 MiB ([`PARTITION_OFFSET`]), formatted as FAT16 (FAT32 from
//! 512 MiB on). `embedded-sdmmc` only opens volumes through an MBR partition table, so
//! the image has one; host tools reach the volume at its offset. With mtools:
//!
//! ```sh
//! mdir  -i disk.img@@1M ::            # list the root directory
//! mtype -i disk.img@@1M ::HELLO.TXT   # print a file
//! mcopy -i disk.img@@1M notes.txt ::NOTES.TXT   # copy a file in
//! ```
//!
//! (`@@1M` is the partition's byte offset, [`PARTITION_OFFSET`].) File names are 8.3
//! short names: up to 8 characters, a dot, up to 3.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::{Error, Result};

/// Bytes of a sector.
const SECTOR: u64 = 512;
/// Byte offset of the FAT partition in the image: 1 MiB (sector 2048), the usual
/// alignment. mtools reaches it as `-i IMAGE@@1M`.
pub const PARTITION_OFFSET: u64 = 1 << 20;
/// The smallest image [`ensure_fat_image`] formats: FAT16 needs at least 4,085 clusters.
pub const MIN_BYTES: u64 = 4 << 20;
/// The largest image: the MBR counts sectors in 32 bits.
pub const MAX_BYTES: u64 = (u32::MAX as u64 + 1) * SECTOR;
/// From this size on the volume is FAT32, below it FAT16.
const FAT32_FROM: u64 = 512 << 20;
/// MBR partition type: FAT16 with LBA addressing.
const TYPE_FAT16_LBA: u8 = 0x0e;
/// MBR partition type: FAT32 with LBA addressing.
const TYPE_FAT32_LBA: u8 = 0x0c;

/// What [`ensure_fat_image`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The image did not exist; it was created and formatted.
    Created,
    /// A file was already there; it was left as it was (whatever it holds).
    Existed,
}

/// Creates the raw disk image `path` of `bytes` bytes (rounded down to whole sectors)
/// with an MBR and one FAT partition at [`PARTITION_OFFSET`], unless a file is already
/// there: an existing image is never touched, so what a system wrote to its disk
/// survives from one run to the next.
///
/// The volume is FAT16 below 512 MiB and FAT32 from there, labelled `KAAL`, and is
/// empty. Read it on the host with mtools at the partition's offset:
/// `mdir -i disk.img@@1M ::` lists it, `mtype -i disk.img@@1M ::HELLO.TXT` prints a
/// file, `mcopy -i disk.img@@1M notes.txt ::NOTES.TXT` copies one in.
///
/// Fails with [`Error::Invalid`] if `bytes` is below [`MIN_BYTES`] (4 MiB) or above
/// [`MAX_BYTES`] (2 TiB), and with [`Error::Io`] if the file cannot be created or
/// written (a half-written new image is removed).
pub fn ensure_fat_image(path: &Path, bytes: u64) -> Result<Ensured> {
    if path.exists() {
        return Ok(Ensured::Existed);
    }
    create_fat_image(path, bytes)?;
    Ok(Ensured::Created)
}

/// Like [`ensure_fat_image`], but always writes a new, empty image, replacing whatever
/// file `path` was.
pub fn create_fat_image(path: &Path, bytes: u64) -> Result<()> {
    let bytes = bytes / SECTOR * SECTOR;
    if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) {
        return Err(Error::Invalid(format!(
            "{}: a FAT disk image must have between {} MiB and {} TiB, not {bytes} bytes",
            path.display(),
            MIN_BYTES >> 20,
            MAX_BYTES >> 40
        )));
    }
    let result = write_image(path, bytes);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result.map_err(|e| Error::io(path, e))
}

fn write_image(path: &Path, bytes: u64) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // Sparse: only what is written takes space.
    file.set_len(bytes)?;
    let partition_bytes = bytes - PARTITION_OFFSET;
    let fat32 = bytes >= FAT32_FROM;
    file.write_all(&mbr(
        PARTITION_OFFSET / SECTOR,
        partition_bytes / SECTOR,
        if fat32 {
            TYPE_FAT32_LBA
        } else {
            TYPE_FAT16_LBA
        },
    ))?;
    let mut options = fatfs::FormatVolumeOptions::new().volume_label(*b"KAAL       ");
    options = if fat32 {
        options.fat_type(fatfs::FatType::Fat32)
    } else {
        options
            .fat_type(fatfs::FatType::Fat16)
            .bytes_per_cluster(fat16_cluster_bytes(partition_bytes))
    };
    fatfs::format_volume(
        Partition::new(&mut file, PARTITION_OFFSET, partition_bytes)?,
        options,
    )?;
    file.sync_all()
}

/// The smallest cluster that keeps a FAT16 volume of `bytes` within its 65,524
/// clusters (with a margin for the FATs and the root directory).
fn fat16_cluster_bytes(bytes: u64) -> u32 {
    let mut cluster = SECTOR;
    while bytes / cluster > 65_000 && cluster < 32 * 1024 {
        cluster *= 2;
    }
    cluster as u32
}

/// A master boot record with one partition: `start` and `sectors` in sectors.
fn mbr(start: u64, sectors: u64, partition_type: u8) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[0] = 0x00; // not bootable
    // CHS fields: "beyond CHS" (LBA only), as partitioning tools write them.
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[4] = partition_type;
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&(start as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr
}

/// A window of `bytes` bytes of a file starting at `offset`: the partition `fatfs`
/// formats and mounts.
struct Partition<'a> {
    file: &'a mut File,
    offset: u64,
    bytes: u64,
    position: u64,
}

impl<'a> Partition<'a> {
    fn new(file: &'a mut File, offset: u64, bytes: u64) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            file,
            offset,
            bytes,
            position: 0,
        })
    }

    /// How many of `wanted` bytes fit before the end of the partition.
    fn clamp(&self, wanted: usize) -> usize {
        wanted.min(self.bytes.saturating_sub(self.position) as usize)
    }
}

impl Read for Partition<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.clamp(buffer.len());
        let n = self.file.read(&mut buffer[..n])?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Write for Partition<'_> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let n = self.clamp(buffer.len());
        if n == 0 && !buffer.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        let n = self.file.write(&buffer[..n])?;
        self.position += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Partition<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(n) => self.position.checked_add_signed(n),
            SeekFrom::End(n) => self.bytes.checked_add_signed(n),
        };
        let target = target.filter(|&t| t <= self.bytes).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek outside the partition")
        })?;
        self.file.seek(SeekFrom::Start(self.offset + target))?;
        self.position = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kaal-disk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("disk.img")
    }

    fn mount(file: &mut File) -> fatfs::FileSystem<Partition<'_>> {
        let bytes = file.metadata().unwrap().len() - PARTITION_OFFSET;
        fatfs::FileSystem::new(
            Partition::new(file, PARTITION_OFFSET, bytes).unwrap(),
            fatfs::FsOptions::new(),
        )
        .unwrap()
    }

    #[test]
    fn created_image_has_an_mbr_and_mounts_as_fat16() {
        let path = scratch("fat16");
        assert_eq!(ensure_fat_image(&path, 8 << 20).unwrap(), Ensured::Created);
        let mut file = File::options().read(true).write(true).open(&path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 8 << 20);
        let mut sector = [0u8; 512];
        file.read_exact(&mut sector).unwrap();
        assert_eq!(sector[510..], [0x55, 0xaa]);
        assert_eq!(sector[446 + 4], TYPE_FAT16_LBA);
        assert_eq!(sector[446 + 8..446 + 12], 2048u32.to_le_bytes());
        assert_eq!(sector[446 + 12..446 + 16], (14 * 1024u32).to_le_bytes());
        let fs = mount(&mut file);
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat16);
        assert_eq!(fs.volume_label(), "KAAL");
        assert_eq!(fs.root_dir().iter().count(), 0);
        let mut hello = fs.root_dir().create_file("HELLO.TXT").unwrap();
        hello.write_all(b"hello from the host\n").unwrap();
        drop(hello);
        drop(fs);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn large_image_is_fat32() {
        let path = scratch("fat32");
        create_fat_image(&path, 600 << 20).unwrap();
        let mut file = File::options().read(true).write(true).open(&path).unwrap();
        let mut sector = [0u8; 512];
        file.read_exact(&mut sector).unwrap();
        assert_eq!(sector[446 + 4], TYPE_FAT32_LBA);
        assert_eq!(mount(&mut file).fat_type(), fatfs::FatType::Fat32);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn existing_image_is_left_alone() {
        let path = scratch("existing");
        std::fs::write(&path, b"not a disk image").unwrap();
        assert_eq!(ensure_fat_image(&path, 8 << 20).unwrap(), Ensured::Existed);
        assert_eq!(std::fs::read(&path).unwrap(), b"not a disk image");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        let path = scratch("small");
        let error = ensure_fat_image(&path, 1 << 20).unwrap_err();
        assert!(matches!(error, Error::Invalid(_)), "{error}");
        assert!(!path.exists());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn mtools_reads_the_image_at_the_documented_offset() {
        if Command::new("mtype").arg("--version").output().is_err() {
            println!("note: mtools is not installed; skipping the mtools check");
            return;
        }
        let path = scratch("mtools");
        ensure_fat_image(&path, 8 << 20).unwrap();
        {
            let mut file = File::options().read(true).write(true).open(&path).unwrap();
            let fs = mount(&mut file);
            let mut hello = fs.root_dir().create_file("HELLO.TXT").unwrap();
            hello.write_all(b"hello from fatfs\n").unwrap();
        }
        let image = format!("{}@@1M", path.display());
        let typed = Command::new("mtype")
            .args(["-i", &image, "::HELLO.TXT"])
            .output()
            .unwrap();
        assert!(typed.status.success(), "{typed:?}");
        assert_eq!(typed.stdout, b"hello from fatfs\n");
        let listed = Command::new("mdir")
            .args(["-i", &image, "::"])
            .output()
            .unwrap();
        assert!(listed.status.success(), "{listed:?}");
        let listing = String::from_utf8_lossy(&listed.stdout);
        assert!(listing.contains("HELLO    TXT"), "{listing}");
        assert!(listing.contains("KAAL"), "{listing}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
