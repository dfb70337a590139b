//! The shape of a response struct on the wire, as data: what the bounded
//! walk ([`super::bounded`]) reads and the generated layouts
//! ([`super::response_layouts`]) are written in.

/// How one struct of a response is laid out, across its versions.
#[derive(Debug)]
pub struct Layout {
    pub name: &'static str,
    /// The versions the decoder accepts.
    pub versions: (i16, i16),
    /// Versions (bit v set = version v) that end the struct with a
    /// tagged-field section.
    pub flexible: u32,
    pub fields: &'static [Field],
    pub tagged: &'static [Tagged],
}

/// A field in wire order: read as the first kind whose version mask holds
/// the version, absent when none does.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub alts: &'static [(u32, Kind)],
}

/// A tagged field the decoder reads in place (not bounded by the size the
/// tag announces), so its content must be walked too.
#[derive(Debug)]
pub struct Tagged {
    pub tag: u32,
    pub versions: u32,
    pub kind: Kind,
}

/// How a field is encoded.
#[derive(Debug)]
pub enum Kind {
    /// Integers, booleans, floats, UUIDs: a fixed number of bytes.
    Fixed(usize),
    /// A nullable string: `int16` length, or compact (varint length + 1).
    String {
        compact: bool,
    },
    /// Nullable bytes: `int32` length, or compact (varint length + 1).
    Bytes {
        compact: bool,
    },
    /// An array: `int32` count, or compact (varint count + 1).
    Array {
        compact: bool,
        of: &'static Kind,
    },
    Struct(&'static Layout),
}
