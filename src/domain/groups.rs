//! Consumer groups as the control plane decides about them: which ids a
//! group move or a detach takes, and in which states a group's offsets
//! may be written from outside it. Pure.

/// A group id a move or a detach takes: exact and non-empty, within
/// Kafka's bound.
pub fn valid_group_id(group: &str) -> bool {
    !group.is_empty() && group.len() <= 255
}

/// Whether a group in `state` (as DescribeGroups names it; "Dead" or
/// nothing for a group the cluster does not know) has no members, so
/// that offsets committed for it from outside stay.
pub fn idle(state: &str) -> bool {
    matches!(state, "Empty" | "Dead" | "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_id_is_exact_and_bounded() {
        assert!(valid_group_id("billing"));
        assert!(valid_group_id(&"g".repeat(255)));
        assert!(!valid_group_id(""));
        assert!(!valid_group_id(&"g".repeat(256)));
    }

    #[test]
    fn only_a_group_without_members_takes_offsets_from_outside() {
        for state in ["Empty", "Dead", ""] {
            assert!(idle(state), "{state:?}");
        }
        for state in ["Stable", "PreparingRebalance", "CompletingRebalance"] {
            assert!(!idle(state), "{state}");
        }
    }
}
