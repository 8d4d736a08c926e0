//! Protocol numbers as newtypes with named constants (IANA DNS parameters).

/// A resource record type (RFC 1035 §3.2.2 and later registrations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rtype(pub u16);

impl Rtype {
    /// IPv4 address.
    pub const A: Rtype = Rtype(1);
    /// Name server.
    pub const NS: Rtype = Rtype(2);
    /// Canonical name.
    pub const CNAME: Rtype = Rtype(5);
    /// Mail destination (obsolete, RFC 1035).
    pub const MD: Rtype = Rtype(3);
    /// Mail forwarder (obsolete, RFC 1035).
    pub const MF: Rtype = Rtype(4);
    /// Start of authority.
    pub const SOA: Rtype = Rtype(6);
    /// Mailbox domain name (RFC 1035).
    pub const MB: Rtype = Rtype(7);
    /// Mail group member (RFC 1035).
    pub const MG: Rtype = Rtype(8);
    /// Mail rename domain name (RFC 1035).
    pub const MR: Rtype = Rtype(9);
    /// Domain name pointer.
    pub const PTR: Rtype = Rtype(12);
    /// Mailbox or mail list information (RFC 1035).
    pub const MINFO: Rtype = Rtype(14);
    /// Mail exchange.
    pub const MX: Rtype = Rtype(15);
    /// Text strings.
    pub const TXT: Rtype = Rtype(16);
    /// Responsible person (RFC 1183).
    pub const RP: Rtype = Rtype(17);
    /// AFS database location (RFC 1183).
    pub const AFSDB: Rtype = Rtype(18);
    /// Route through (RFC 1183).
    pub const RT: Rtype = Rtype(21);
    /// X.400 mail mapping (RFC 2163).
    pub const PX: Rtype = Rtype(26);
    /// IPv6 address.
    pub const AAAA: Rtype = Rtype(28);
    /// Service locator.
    pub const SRV: Rtype = Rtype(33);
    /// Naming authority pointer (RFC 3403).
    pub const NAPTR: Rtype = Rtype(35);
    /// Key exchanger (RFC 2230).
    pub const KX: Rtype = Rtype(36);
    /// Delegation name.
    pub const DNAME: Rtype = Rtype(39);
    /// EDNS pseudo-record.
    pub const OPT: Rtype = Rtype(41);
    /// Delegation signer.
    pub const DS: Rtype = Rtype(43);
    /// Signature.
    pub const RRSIG: Rtype = Rtype(46);
    /// Next secure.
    pub const NSEC: Rtype = Rtype(47);
    /// Public key.
    pub const DNSKEY: Rtype = Rtype(48);
    /// Hashed next secure.
    pub const NSEC3: Rtype = Rtype(50);
    /// NSEC3 parameters.
    pub const NSEC3PARAM: Rtype = Rtype(51);
    /// Child DS.
    pub const CDS: Rtype = Rtype(59);
    /// Child DNSKEY.
    pub const CDNSKEY: Rtype = Rtype(60);
    /// Transaction signature.
    pub const TSIG: Rtype = Rtype(250);
    /// Incremental transfer.
    pub const IXFR: Rtype = Rtype(251);
    /// Full transfer.
    pub const AXFR: Rtype = Rtype(252);
    /// Mailbox-related records (obsolete query type, RFC 1035).
    pub const MAILB: Rtype = Rtype(253);
    /// Mail agent records (obsolete query type, RFC 1035).
    pub const MAILA: Rtype = Rtype(254);
    /// Any type (RFC 8482 answers it minimally).
    pub const ANY: Rtype = Rtype(255);

    /// Whether this is a query-only meta type (RFC 6895 §3.1: 128–255) or OPT.
    pub fn is_meta(self) -> bool {
        self.0 == 41 || (128..=255).contains(&self.0)
    }

    /// Whether RDATA of this type holds names that may be compressed (RFC 3597 §4).
    pub fn compressible_names(self) -> bool {
        matches!(
            self,
            Rtype::NS | Rtype::CNAME | Rtype::SOA | Rtype::PTR | Rtype::MX
        )
    }
}

/// A class (RFC 1035 §3.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class(pub u16);

impl Class {
    /// Internet.
    pub const IN: Class = Class(1);
    /// Chaos (server identity queries).
    pub const CH: Class = Class(3);
    /// No class: "delete this record" in UPDATE, "must not exist" in prerequisites (RFC 2136 §2.4).
    pub const NONE: Class = Class(254);
    /// Any class.
    pub const ANY: Class = Class(255);
}

/// A header opcode (RFC 1035 §4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opcode(pub u8);

impl Opcode {
    /// Standard query.
    pub const QUERY: Opcode = Opcode(0);
    /// Zone change notification (RFC 1996).
    pub const NOTIFY: Opcode = Opcode(4);
    /// Dynamic update (RFC 2136).
    pub const UPDATE: Opcode = Opcode(5);
}

/// A response code, including extended codes carried in OPT (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rcode(pub u16);

impl Rcode {
    /// No error.
    pub const NOERROR: Rcode = Rcode(0);
    /// Format error.
    pub const FORMERR: Rcode = Rcode(1);
    /// Server failure.
    pub const SERVFAIL: Rcode = Rcode(2);
    /// Name does not exist.
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// Not implemented.
    pub const NOTIMP: Rcode = Rcode(4);
    /// Refused.
    pub const REFUSED: Rcode = Rcode(5);
    /// A name that must not exist does (RFC 2136).
    pub const YXDOMAIN: Rcode = Rcode(6);
    /// An RRset that must not exist does (RFC 2136).
    pub const YXRRSET: Rcode = Rcode(7);
    /// An RRset that must exist does not (RFC 2136).
    pub const NXRRSET: Rcode = Rcode(8);
    /// Not authoritative for the zone (RFC 2136), or not authorized (TSIG, RFC 8945).
    pub const NOTAUTH: Rcode = Rcode(9);
    /// A name is outside the zone of the request (RFC 2136).
    pub const NOTZONE: Rcode = Rcode(10);
    /// Bad EDNS version.
    pub const BADVERS: Rcode = Rcode(16);
    /// Bad or missing server cookie (RFC 7873 §8).
    pub const BADCOOKIE: Rcode = Rcode(23);
}

/// EDNS option codes used here.
pub mod option {
    /// Name server identifier (RFC 5001).
    pub const NSID: u16 = 3;
    /// DNS cookie (RFC 7873).
    pub const COOKIE: u16 = 10;
    /// Extended DNS Error (RFC 8914).
    pub const EDE: u16 = 15;
}

/// Extended DNS Error info codes used here (RFC 8914 §4).
pub mod ede {
    /// Other error.
    pub const OTHER: u16 = 0;
    /// Blocked by the operator's policy.
    pub const BLOCKED: u16 = 15;
    /// Censored on an external requirement.
    pub const CENSORED: u16 = 16;
    /// Prohibited by an access rule.
    pub const PROHIBITED: u16 = 18;
    /// Not authoritative for the name.
    pub const NOT_AUTHORITATIVE: u16 = 20;
    /// Not supported.
    pub const NOT_SUPPORTED: u16 = 21;
}
