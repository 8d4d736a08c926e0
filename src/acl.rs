//! Access rules: who may transfer the zone, send NOTIFY, or send dynamic updates.
//!
//! Owns the rule lists per [`Action`], their TOML form and their check. A rule
//! matches a request when its source address is inside one of the rule's
//! prefixes (IPv4 or IPv6 CIDR; IPv4-mapped IPv6 sources count as IPv4) and,
//! if the rule names a TSIG key, the request was signed with that key and the
//! signature verified. The first matching rule decides; when none matches, the
//! request is denied. An action without rules denies everything.
//!
//! It does not verify signatures (that is [`crate::tsig`]): callers pass the
//! name of the key that verified, or `None` for an unsigned request. A request
//! whose TSIG failed never gets here; it gets its TSIG error answer.
//!
//! Configuration (every field is checked; errors name the field):
//! ```toml
//! [[acl.transfer]]
//! from = ["127.0.0.0/8", "::1"]     # addresses or prefixes; omit for "any address"
//! key = "xfr-key"                   # optional: only requests signed with this key
//! [[acl.transfer]]
//! from = ["192.0.2.0/24"]
//! deny = true                       # an explicit refusal, before later rules
//! [[acl.update]]
//! key = "provisioning"              # any address, this key only
//! ```

use crate::tsig::KeyRing;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// AXFR or IXFR of the zone (RFC 5936 §6, RFC 1995).
    Transfer,
    /// Tell us the zone changed on a primary (RFC 1996).
    Notify,
    /// Change the zone (RFC 2136).
    Update,
}

impl Action {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Action::Transfer => "transfer",
            Action::Notify => "notify",
            Action::Update => "update",
        }
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Source prefixes; empty means any address.
    pub from: Vec<IpNet>,
    /// Required TSIG key (lowercase wire name), if any.
    pub key: Option<Vec<u8>>,
    /// Whether a match refuses instead of allowing.
    pub deny: bool,
}

impl Rule {
    fn matches(&self, addr: IpAddr, key: Option<&[u8]>) -> bool {
        let addr = addr.to_canonical();
        let addr_ok = self.from.is_empty() || self.from.iter().any(|n| n.contains(&addr));
        let key_ok = match (&self.key, key) {
            (None, _) => true,
            (Some(want), Some(got)) => crate::name::eq_ignore_case(want, got),
            (Some(_), None) => false,
        };
        addr_ok && key_ok
    }
}

/// The outcome of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Index of the rule that decided (within the action's list), `None` for the default deny.
    pub rule: Option<usize>,
}

/// The rules of every action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    transfer: Vec<Rule>,
    notify: Vec<Rule>,
    update: Vec<Rule>,
}

impl Acl {
    /// Rules that deny everything.
    pub fn deny_all() -> Acl {
        Acl::default()
    }

    /// The rules of one action, in order.
    pub fn rules(&self, action: Action) -> &[Rule] {
        match action {
            Action::Transfer => &self.transfer,
            Action::Notify => &self.notify,
            Action::Update => &self.update,
        }
    }

    /// Replace the rules of one action.
    pub fn set_rules(&mut self, action: Action, rules: Vec<Rule>) {
        match action {
            Action::Transfer => self.transfer = rules,
            Action::Notify => self.notify = rules,
            Action::Update => self.update = rules,
        }
    }

    /// Check a request from `addr`, verified with TSIG key `key` (wire name) or unsigned.
    pub fn check(&self, action: Action, addr: IpAddr, key: Option<&[u8]>) -> Decision {
        for (i, r) in self.rules(action).iter().enumerate() {
            if r.matches(addr, key) {
                return Decision {
                    allowed: !r.deny,
                    rule: Some(i),
                };
            }
        }
        Decision {
            allowed: false,
            rule: None,
        }
    }
}

/// One rule as written in the configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Addresses or CIDR prefixes; absent means any address (then `key` is required).
    #[serde(default)]
    pub from: Option<Vec<String>>,
    /// Name of a TSIG key the request must be signed with.
    #[serde(default)]
    pub key: Option<String>,
    /// Refuse instead of allow when this rule matches.
    #[serde(default)]
    pub deny: bool,
}

/// The `[acl]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Rules for AXFR/IXFR.
    #[serde(default)]
    pub transfer: Vec<RuleConfig>,
    /// Rules for incoming NOTIFY.
    #[serde(default)]
    pub notify: Vec<RuleConfig>,
    /// Rules for dynamic update.
    #[serde(default)]
    pub update: Vec<RuleConfig>,
}

/// A configuration error: the field (`acl.transfer[0].from[1]`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {what}")]
pub struct AclError {
    /// The field.
    pub at: String,
    /// What is wrong.
    pub what: String,
}

/// Parse an address (`192.0.2.1`, `::1`) or prefix (`10.0.0.0/8`); host bits must be zero.
pub fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if t.contains('/') {
        let net: IpNet = t.parse().map_err(|_| {
            format!("'{t}' is not an address prefix (like 10.0.0.0/8 or 2001:db8::/32)")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "'{t}' has bits set after the prefix length (did you mean {}?)",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let addr: IpAddr = t
            .parse()
            .map_err(|_| format!("'{t}' is not an IP address or prefix"))?;
        Ok(IpNet::from(addr.to_canonical()))
    }
}

impl AclConfig {
    /// Check every rule against the key ring and build the [`Acl`].
    pub fn build(&self, keys: &KeyRing) -> Result<Acl, AclError> {
        let mut acl = Acl::default();
        for action in [Action::Transfer, Action::Notify, Action::Update] {
            let list = match action {
                Action::Transfer => &self.transfer,
                Action::Notify => &self.notify,
                Action::Update => &self.update,
            };
            let mut rules = Vec::with_capacity(list.len());
            for (i, rc) in list.iter().enumerate() {
                let at = |field: &str| format!("acl.{}[{i}]{field}", action.name());
                let mut from = Vec::new();
                match &rc.from {
                    Some(list) if list.is_empty() => {
                        return Err(AclError {
                            at: at(".from"),
                            what: "empty list matches nothing; remove the rule or list addresses"
                                .into(),
                        })
                    }
                    Some(list) => {
                        for (j, p) in list.iter().enumerate() {
                            from.push(parse_prefix(p).map_err(|what| AclError {
                                at: at(&format!(".from[{j}]")),
                                what,
                            })?);
                        }
                    }
                    None if rc.key.is_none() => {
                        return Err(AclError {
                            at: at(""),
                            what: "a rule needs 'from', 'key' or both".into(),
                        })
                    }
                    None => {}
                }
                let key = match &rc.key {
                    Some(name) => match keys.get_text(name) {
                        Some(k) => Some(k.name().to_vec()),
                        None => {
                            return Err(AclError {
                                at: at(".key"),
                                what: format!("no TSIG key named '{name}' is defined"),
                            })
                        }
                    },
                    None => None,
                };
                rules.push(Rule {
                    from,
                    key,
                    deny: rc.deny,
                });
            }
            acl.set_rules(action, rules);
        }
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsig::Key;

    fn keys() -> KeyRing {
        let mut r = KeyRing::new();
        r.insert(Key::from_text("xfr-key", "hmac-sha256", "c2VjcmV0").unwrap())
            .unwrap();
        r.insert(Key::from_text("upd", "hmac-sha512", "c2VjcmV0").unwrap())
            .unwrap();
        r
    }

    fn acl(text: &str) -> Result<Acl, AclError> {
        #[derive(Deserialize)]
        struct Top {
            acl: AclConfig,
        }
        let t: Top = toml::from_str(text).map_err(|e| AclError {
            at: "toml".into(),
            what: e.to_string(),
        })?;
        t.acl.build(&keys())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const XFR: &[u8] = b"\x07xfr-key\x00";

    #[test]
    fn first_match_wins_and_default_is_deny() {
        let a = acl("[[acl.transfer]]\nfrom = [\"192.0.2.66\"]\ndeny = true\n\
             [[acl.transfer]]\nfrom = [\"192.0.2.0/24\", \"::1\"]\n\
             [[acl.transfer]]\nfrom = [\"198.51.100.0/24\"]\nkey = \"XFR-KEY.\"\n")
        .unwrap();
        let t = Action::Transfer;
        assert_eq!(
            a.check(t, ip("192.0.2.66"), None),
            Decision {
                allowed: false,
                rule: Some(0)
            }
        );
        assert_eq!(
            a.check(t, ip("192.0.2.7"), None),
            Decision {
                allowed: true,
                rule: Some(1)
            }
        );
        assert!(a.check(t, ip("::1"), Some(XFR)).allowed);
        // Key required: unsigned or another key falls through to the default deny.
        assert_eq!(
            a.check(t, ip("198.51.100.9"), None),
            Decision {
                allowed: false,
                rule: None
            }
        );
        assert!(!a.check(t, ip("198.51.100.9"), Some(b"\x03upd\x00")).allowed);
        assert!(
            a.check(t, ip("198.51.100.9"), Some(b"\x07XFR-KEY\x00"))
                .allowed
        );
        // Other actions have no rules: denied.
        assert!(!a.check(Action::Update, ip("192.0.2.7"), None).allowed);
        assert!(!a.check(Action::Notify, ip("::1"), None).allowed);
        assert!(!Acl::deny_all().check(t, ip("127.0.0.1"), None).allowed);
    }

    #[test]
    fn ipv4_mapped_sources_match_ipv4_prefixes_and_key_only_rules_match_any_address() {
        let a = acl("[[acl.notify]]\nfrom = [\"127.0.0.0/8\"]\n[[acl.update]]\nkey = \"upd\"\n")
            .unwrap();
        assert!(
            a.check(Action::Notify, ip("::ffff:127.0.0.1"), None)
                .allowed
        );
        assert!(!a.check(Action::Notify, ip("::2"), None).allowed);
        assert!(
            a.check(Action::Update, ip("2001:db8::1"), Some(b"\x03upd\x00"))
                .allowed
        );
        assert!(!a.check(Action::Update, ip("2001:db8::1"), None).allowed);
    }

    #[test]
    fn errors_name_the_field() {
        let e = acl("[[acl.transfer]]\nfrom = [\"127.0.0.0/8\", \"10.0.0/8\"]\n").unwrap_err();
        assert_eq!(e.at, "acl.transfer[0].from[1]");
        let e = acl("[[acl.update]]\nfrom = [\"::1\"]\n[[acl.update]]\nfrom = [\"10.1.2.3/8\"]\n")
            .unwrap_err();
        assert_eq!(e.at, "acl.update[1].from[0]");
        assert!(e.what.contains("10.0.0.0/8"), "{e}");
        let e = acl("[[acl.notify]]\nfrom = [\"::1\"]\nkey = \"nokey\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "acl.notify[0].key: no TSIG key named 'nokey' is defined"
        );
        let e = acl("[[acl.notify]]\ndeny = true\n").unwrap_err();
        assert_eq!(e.at, "acl.notify[0]");
        let e = acl("[[acl.notify]]\nfrom = []\n").unwrap_err();
        assert_eq!(e.at, "acl.notify[0].from");
        assert!(acl("[[acl.transfer]]\nfrom = [\"::1\"]\nallow = true\n").is_err());
        assert!(acl("[[acl.xfr]]\nfrom = [\"::1\"]\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_prefix_never_panics(text in "[0-9a-fA-F:./ ]{0,45}") {
            if let Ok(net) = parse_prefix(&text) {
                proptest::prop_assert_eq!(net.trunc(), net);
            }
        }
    }
}
