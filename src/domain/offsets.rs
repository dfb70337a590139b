//! Offsets in the two spaces the proxy keeps apart: the virtual log
//! clients see, and each upstream cluster's own log. An offset in the wrong
//! space is the bug a stitched log invites, so each space has its type; an
//! offset crosses only by a segment's delta (virtual − upstream), which
//! [`crate::domain::stitch`] keeps.
//!
//! Kafka's offset fields carry either an offset or, when negative, no
//! offset (-1; some fields give other negative values meanings of their
//! own). That rule is read here, once: [`Offset::from_wire`],
//! [`Offset::to_wire`], and [`carry`] for a field that crosses spaces.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Kafka's "no offset" in an offset field.
pub const NO_OFFSET: i64 = -1;

/// An offset in the log clients see through the proxy.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct VirtualOffset(pub i64);

/// An offset in one upstream cluster's log.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UpstreamOffset(pub i64);

/// What offsets of either space share: their wire form, and the
/// arithmetic within one space.
pub trait Offset: Copy + Ord {
    /// The offset as Kafka's offset fields carry it.
    fn wire(self) -> i64;

    /// An offset field's value as an offset, or `None` where it holds
    /// none (any negative value).
    fn from_wire(wire: i64) -> Option<Self>;

    /// An offset field for `offset`: -1 for none.
    fn to_wire(offset: Option<Self>) -> i64 {
        offset.map_or(NO_OFFSET, Self::wire)
    }

    /// The offset `n` records later (earlier for a negative `n`).
    fn plus(self, n: i64) -> Self;

    /// How many records `self` is past `earlier` (negative when before).
    fn since(self, earlier: Self) -> i64 {
        self.wire().saturating_sub(earlier.wire())
    }
}

/// An offset field carried from one space into the other by `into`; a
/// field holding no offset passes as it came.
pub fn carry<A: Offset, B: Offset>(wire: i64, into: impl FnOnce(A) -> B) -> i64 {
    A::from_wire(wire).map_or(wire, |a| into(a).wire())
}

/// Both spaces follow one wire rule.
macro_rules! offset_space {
    ($space:ident) => {
        impl Offset for $space {
            fn wire(self) -> i64 {
                self.0
            }

            fn from_wire(wire: i64) -> Option<Self> {
                (wire >= 0).then_some($space(wire))
            }

            fn plus(self, n: i64) -> Self {
                $space(self.0.saturating_add(n))
            }
        }

        /// The offset as a number, as messages and logs print it.
        impl fmt::Display for $space {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

offset_space!(VirtualOffset);
offset_space!(UpstreamOffset);

impl VirtualOffset {
    /// This offset in a segment whose offsets are `delta` (virtual −
    /// upstream) past its upstream log's.
    pub fn to_upstream(self, delta: i64) -> UpstreamOffset {
        UpstreamOffset(self.0.saturating_sub(delta))
    }

    /// The delta (virtual − upstream) that puts upstream offset `u` here.
    pub fn delta_from(self, u: UpstreamOffset) -> i64 {
        self.0.saturating_sub(u.0)
    }
}

impl UpstreamOffset {
    /// This offset in the virtual log, in a segment `delta` (virtual −
    /// upstream) past it.
    pub fn to_virtual(self, delta: i64) -> VirtualOffset {
        VirtualOffset(self.0.saturating_add(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_field_holds_no_offset_and_none_is_minus_one() {
        assert_eq!(UpstreamOffset::from_wire(0), Some(UpstreamOffset(0)));
        assert_eq!(UpstreamOffset::from_wire(42), Some(UpstreamOffset(42)));
        for sentinel in [-1, -2, i64::MIN] {
            assert_eq!(UpstreamOffset::from_wire(sentinel), None, "{sentinel}");
            assert_eq!(VirtualOffset::from_wire(sentinel), None, "{sentinel}");
        }
        assert_eq!(VirtualOffset::to_wire(None), -1);
        assert_eq!(VirtualOffset::to_wire(Some(VirtualOffset(7))), 7);
    }

    #[test]
    fn a_field_carried_across_spaces_moves_only_when_it_holds_an_offset() {
        let shift = |v: VirtualOffset| v.to_upstream(40);
        assert_eq!(carry(100, shift), 60);
        // -1 (none), -2 (earliest, in ListOffsets) pass as they came.
        assert_eq!(carry(-1, shift), -1);
        assert_eq!(carry(-2, shift), -2);
        assert_eq!(carry(-1, |u: UpstreamOffset| u.to_virtual(40)), -1);
    }

    #[test]
    fn conversions_between_spaces_are_inverse_and_saturate() {
        let u = UpstreamOffset(20);
        let v = u.to_virtual(480);
        assert_eq!(v, VirtualOffset(500));
        assert_eq!(v.to_upstream(480), u);
        assert_eq!(v.delta_from(u), 480);
        assert_eq!(
            UpstreamOffset(i64::MAX).to_virtual(1),
            VirtualOffset(i64::MAX)
        );
        assert_eq!(
            VirtualOffset(i64::MIN).to_upstream(1),
            UpstreamOffset(i64::MIN)
        );
    }

    #[test]
    fn arithmetic_stays_in_one_space() {
        let end = UpstreamOffset(90);
        assert_eq!(end.since(UpstreamOffset(50)), 40);
        assert_eq!(UpstreamOffset(50).since(end), -40);
        assert_eq!(UpstreamOffset(50).plus(40), end);
        assert_eq!(VirtualOffset(3).plus(-3), VirtualOffset(0));
    }

    #[test]
    fn offsets_print_and_serialize_as_plain_numbers() {
        assert_eq!(UpstreamOffset(1_234).to_string(), "1234");
        assert_eq!(format!("{:>6}", VirtualOffset(5)), "     5");
        assert_eq!(serde_json::to_string(&VirtualOffset(500)).unwrap(), "500");
        let u: UpstreamOffset = serde_json::from_str("20").unwrap();
        assert_eq!(u, UpstreamOffset(20));
    }
}
