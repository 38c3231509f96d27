//! Restart budgets: whether a faulted component is restarted or given up on.

use alloc::collections::VecDeque;

/// When to restart a component that faulted: the system description's policy.
pub use kaal_bootinfo::system::RestartPolicy;

/// What to do about a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestartDecision {
    /// Restart the component; `restarts` counts this restart.
    Restart {
        /// Restarts so far, including this one.
        restarts: u32,
    },
    /// Leave the component stopped.
    GiveUp {
        /// Restarts so far.
        restarts: u32,
    },
}

impl RestartDecision {
    /// Whether the component is restarted.
    pub fn is_restart(&self) -> bool {
        matches!(self, Self::Restart { .. })
    }
}

/// Applies a [`RestartPolicy`] to one component's faults.
///
/// With [`RestartPolicy::AtMost`], a restart at `now_ms` is allowed if fewer than
/// `restarts` earlier restarts happened after `now_ms - window_ms`, so no half-open
/// window of `window_ms` ever holds more than `restarts` restarts. Only the timestamps
/// of those recent restarts are kept, at most `restarts` of them.
///
/// ```
/// use kaal_broker::restart::{RestartBudget, RestartDecision, RestartPolicy};
///
/// let mut budget = RestartBudget::new(RestartPolicy::AtMost { restarts: 2, window_ms: 1000 });
/// assert_eq!(budget.on_fault(0), RestartDecision::Restart { restarts: 1 });
/// assert_eq!(budget.on_fault(10), RestartDecision::Restart { restarts: 2 });
/// assert_eq!(budget.on_fault(999), RestartDecision::GiveUp { restarts: 2 });
/// assert_eq!(budget.on_fault(1000), RestartDecision::Restart { restarts: 3 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartBudget {
    policy: RestartPolicy,
    restarts: u32,
    /// Times of the restarts still inside the window, oldest first.
    recent_ms: VecDeque<u64>,
    /// The latest time seen: time never goes backwards.
    latest_ms: u64,
}

impl From<RestartPolicy> for RestartBudget {
    fn from(policy: RestartPolicy) -> Self {
        Self::new(policy)
    }
}

impl RestartBudget {
    /// A budget with no restarts yet.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            restarts: 0,
            recent_ms: VecDeque::new(),
            latest_ms: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Decides about a fault at `now_ms` and records the restart if there is one. An
    /// earlier time than one seen before counts as that latest time.
    pub fn on_fault(&mut self, now_ms: u64) -> RestartDecision {
        let now_ms = now_ms.max(self.latest_ms);
        self.latest_ms = now_ms;
        let allowed = match self.policy {
            RestartPolicy::Never => false,
            RestartPolicy::Always => true,
            RestartPolicy::AtMost {
                restarts,
                window_ms,
            } => {
                while self
                    .recent_ms
                    .front()
                    .is_some_and(|&time_ms| now_ms - time_ms >= window_ms)
                {
                    self.recent_ms.pop_front();
                }
                let allowed = self.recent_ms.len() < restarts as usize;
                if allowed {
                    self.recent_ms.push_back(now_ms);
                }
                allowed
            }
        };
        if allowed {
            self.restarts = self.restarts.saturating_add(1);
            RestartDecision::Restart {
                restarts: self.restarts,
            }
        } else {
            RestartDecision::GiveUp {
                restarts: self.restarts,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_and_always() {
        let mut never = RestartBudget::new(RestartPolicy::Never);
        assert_eq!(never.on_fault(5), RestartDecision::GiveUp { restarts: 0 });
        let mut always = RestartBudget::from(RestartPolicy::Always);
        for expected in 1..=3 {
            let decision = always.on_fault(0);
            assert_eq!(decision, RestartDecision::Restart { restarts: expected });
            assert!(decision.is_restart());
        }
    }

    #[test]
    fn memory_is_bounded_and_time_never_goes_back() {
        let policy = RestartPolicy::AtMost {
            restarts: 2,
            window_ms: 100,
        };
        let mut budget = RestartBudget::new(policy);
        for now_ms in (0..10_000).step_by(10) {
            budget.on_fault(now_ms);
            assert!(budget.recent_ms.len() <= 2);
        }
        // A clock going backwards counts as the latest time: still within the window.
        let mut budget = RestartBudget::new(policy);
        assert!(budget.on_fault(1000).is_restart());
        assert!(budget.on_fault(1050).is_restart());
        assert!(!budget.on_fault(0).is_restart());
        assert_eq!(
            budget.on_fault(1150),
            RestartDecision::Restart { restarts: 3 }
        );
    }

    #[test]
    fn zero_budget_and_zero_window() {
        let mut none = RestartBudget::new(RestartPolicy::AtMost {
            restarts: 0,
            window_ms: 10,
        });
        assert!(!none.on_fault(0).is_restart());
        let mut unlimited = RestartBudget::new(RestartPolicy::AtMost {
            restarts: 1,
            window_ms: 0,
        });
        assert!(unlimited.on_fault(7).is_restart());
        assert!(unlimited.on_fault(7).is_restart());
    }
}
