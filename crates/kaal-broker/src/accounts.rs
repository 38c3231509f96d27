//! Per-component memory accounting with quotas.

use alloc::collections::BTreeMap;

use crate::devices::Owner;

/// Why [`Accounts::charge`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The charge would take the owner over its quota.
    #[error("{owner} would exceed its quota: {used} + {requested} bytes > {quota} bytes")]
    Exceeded {
        /// The component charged.
        owner: Owner,
        /// Bytes it uses now.
        used: u64,
        /// Its quota in bytes.
        quota: u64,
        /// Bytes asked for.
        requested: u64,
    },
    /// The owner has no quota.
    #[error("{owner} has no memory quota")]
    UnknownOwner {
        /// The component charged.
        owner: Owner,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Account {
    quota_bytes: u64,
    used_bytes: u64,
}

/// Bytes used and allowed per component.
///
/// A component must have a quota before it can be charged; a charge that would take
/// it over the quota is refused whole.
///
/// ```
/// use kaal_broker::accounts::{Accounts, QuotaError};
/// use kaal_broker::devices::Owner;
///
/// let mut accounts = Accounts::new();
/// accounts.set_quota(Owner(3), 16 * 1024);
/// accounts.charge(Owner(3), 12 * 1024)?;
/// assert!(matches!(accounts.charge(Owner(3), 8192), Err(QuotaError::Exceeded { .. })));
/// accounts.release(Owner(3), 4096);
/// assert_eq!(accounts.used(Owner(3)), 8192);
/// # Ok::<(), QuotaError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounts {
    accounts: BTreeMap<Owner, Account>,
}

impl Accounts {
    /// No accounts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `owner`'s quota, opening its account if needed. Lowering a quota below the
    /// current use takes nothing back; further charges fail until enough is released.
    pub fn set_quota(&mut self, owner: Owner, quota_bytes: u64) {
        self.accounts
            .entry(owner)
            .and_modify(|account| account.quota_bytes = quota_bytes)
            .or_insert(Account {
                quota_bytes,
                used_bytes: 0,
            });
    }

    /// Charges `bytes` to `owner`.
    ///
    /// # Errors
    ///
    /// [`QuotaError::UnknownOwner`] without a quota, [`QuotaError::Exceeded`] if the
    /// use would exceed it; nothing is charged then.
    pub fn charge(&mut self, owner: Owner, bytes: u64) -> Result<(), QuotaError> {
        let account = self
            .accounts
            .get_mut(&owner)
            .ok_or(QuotaError::UnknownOwner { owner })?;
        match account.used_bytes.checked_add(bytes) {
            Some(used) if used <= account.quota_bytes => {
                account.used_bytes = used;
                Ok(())
            }
            _ => Err(QuotaError::Exceeded {
                owner,
                used: account.used_bytes,
                quota: account.quota_bytes,
                requested: bytes,
            }),
        }
    }

    /// Gives `bytes` back (never below zero; nothing for an unknown owner).
    pub fn release(&mut self, owner: Owner, bytes: u64) {
        if let Some(account) = self.accounts.get_mut(&owner) {
            account.used_bytes = account.used_bytes.saturating_sub(bytes);
        }
    }

    /// Bytes charged to `owner` (0 if unknown).
    pub fn used(&self, owner: Owner) -> u64 {
        self.accounts
            .get(&owner)
            .map_or(0, |account| account.used_bytes)
    }

    /// `owner`'s quota, if it has an account.
    pub fn quota(&self, owner: Owner) -> Option<u64> {
        self.accounts.get(&owner).map(|account| account.quota_bytes)
    }

    /// Closes `owner`'s account; returns the bytes still charged to it, if it had one.
    pub fn remove(&mut self, owner: Owner) -> Option<u64> {
        self.accounts
            .remove(&owner)
            .map(|account| account.used_bytes)
    }

    /// The owners with an account, in order.
    pub fn owners(&self) -> impl Iterator<Item = Owner> + '_ {
        self.accounts.keys().copied()
    }
}
