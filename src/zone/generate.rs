//! A deterministic synthetic TLD zone, for tests and benchmarks.
//!
//! Shaped like a ccTLD delegation zone (like the project's load harness
//! generator): SOA, apex NS with in-zone glue, then N delegations with 2–3 NS
//! each, about 92 % pointing at out-of-zone hosting providers (a skewed,
//! Zipf-like choice) and 8 % at in-bailiwick servers with glue (A, and AAAA for
//! about 60 % of those), and about 35 % with a DS record. The same parameters
//! always give byte-identical output: the generator uses its own small PRNG.
//!
//! It must stay out of the server's load path; it only writes text.

use std::io::Write;

/// Parameters of a synthetic zone.
#[derive(Clone, Debug)]
pub struct GenParams {
    /// Origin without the trailing dot, e.g. `be`.
    pub origin: String,
    /// Number of delegations.
    pub delegations: usize,
    /// Seed; the same seed gives the same zone.
    pub seed: u64,
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Delegations written.
    pub delegations: usize,
    /// Delegations with a DS record.
    pub secure: usize,
    /// Delegations with in-bailiwick name servers and glue.
    pub with_glue: usize,
    /// Records written.
    pub records: usize,
}

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const WORDS: &[&str] = &[
    "auto",
    "garage",
    "immo",
    "huis",
    "bouw",
    "bakkerij",
    "cafe",
    "resto",
    "frituur",
    "kapper",
    "dokter",
    "apotheek",
    "advocaat",
    "notaris",
    "consult",
    "design",
    "studio",
    "media",
    "web",
    "shop",
    "online",
    "digital",
    "tech",
    "data",
    "cloud",
    "net",
    "info",
    "pro",
    "group",
    "team",
    "service",
    "brussel",
    "antwerpen",
    "gent",
    "brugge",
    "leuven",
    "liege",
    "namur",
    "mons",
    "mechelen",
    "hasselt",
    "kortrijk",
    "oostende",
    "genk",
    "charleroi",
    "maison",
    "jardin",
    "fiets",
    "sport",
    "club",
    "school",
    "atelier",
    "bloemen",
    "wijn",
    "bier",
    "chocolade",
    "wafel",
    "frites",
    "kaas",
    "koffie",
    "bank",
    "vastgoed",
    "schilder",
    "elektro",
    "dak",
    "keuken",
    "hotel",
    "camping",
    "reis",
    "events",
    "muziek",
    "foto",
    "video",
    "radio",
    "kids",
    "mode",
    "beauty",
    "wellness",
];
const TLDS: &[&str] = &["net", "com", "eu", "org", "nl", "fr", "de"];
const PROVIDER_SUFFIX: &[&str] = &["dns", "hosting", "servers", "cloud", "ns", "data"];

fn label(rng: &mut Rng, out: &mut String) {
    out.clear();
    match rng.below(4) {
        0 => {
            out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        1 => {
            out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            out.push_str(&rng.below(10000).to_string());
        }
        2 => {
            out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            out.push('-');
            out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        }
        _ => {
            let len = 3 + rng.below(10);
            for _ in 0..len {
                let c = rng.below(36) as u8;
                out.push(if c < 26 {
                    (b'a' + c) as char
                } else {
                    (b'0' + c - 26) as char
                });
            }
        }
    }
}

/// Provider index with a skew: a few big hosters, a long tail.
fn provider(rng: &mut Rng, providers: u64) -> u64 {
    let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    ((providers as f64).powf(u) - 1.0) as u64 % providers
}

/// The delegated names, in order, without writing a zone.
pub fn domain_names(p: &GenParams) -> Vec<String> {
    let mut names = Vec::with_capacity(p.delegations);
    let _ = write_inner(p, &mut std::io::sink(), Some(&mut names));
    names
}

/// Write a deterministic synthetic TLD zone in master-file format.
pub fn write_zone(p: &GenParams, w: &mut impl Write) -> std::io::Result<GenStats> {
    write_inner(p, w, None)
}

fn write_inner(
    p: &GenParams,
    w: &mut impl Write,
    mut names: Option<&mut Vec<String>>,
) -> std::io::Result<GenStats> {
    let o = p.origin.trim_end_matches('.');
    let mut rng = Rng(p.seed ^ 0x6265_6C66_7279);
    let mut st = GenStats::default();
    writeln!(
        w,
        "; synthetic {o}. zone from `belfry generate`: seed {} delegations {}",
        p.seed, p.delegations
    )?;
    writeln!(w, "$ORIGIN {o}.\n$TTL 3600")?;
    writeln!(
        w,
        "{o}. 3600 IN SOA a.nsset.{o}. tech.dns.{o}. 2026112401 3600 1800 3600000 600"
    )?;
    for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
        writeln!(w, "{o}. 86400 IN NS {s}.nsset.{o}.")?;
        writeln!(w, "{s}.nsset.{o}. 86400 IN A 198.18.255.{}", i + 1)?;
        writeln!(w, "{s}.nsset.{o}. 86400 IN AAAA 2001:db8:be::{}", i + 1)?;
        st.records += 3;
    }
    st.records += 1;
    let providers = (p.delegations as u64 / 40).clamp(20, 50_000);
    let mut seen = std::collections::HashSet::with_capacity(p.delegations);
    let mut lab = String::new();
    while st.delegations < p.delegations {
        label(&mut rng, &mut lab);
        if lab.len() > 63 || !seen.insert(lab.clone()) || lab == "nsset" {
            continue;
        }
        let d = format!("{lab}.{o}.");
        let nns = 2 + rng.below(2);
        if rng.chance(8) {
            st.with_glue += 1;
            let v6 = rng.chance(60);
            for k in 1..=nns {
                writeln!(w, "{d} 3600 IN NS ns{k}.{d}")?;
            }
            for k in 1..=nns {
                let a = rng.next();
                writeln!(
                    w,
                    "ns{k}.{d} 3600 IN A 198.{}.{}.{}",
                    18 + (a & 1),
                    (a >> 8) & 255,
                    1 + (a >> 16) % 254
                )?;
                st.records += 2;
                if v6 {
                    writeln!(
                        w,
                        "ns{k}.{d} 3600 IN AAAA 2001:db8:{:x}::{:x}",
                        (a >> 24) & 0xffff,
                        1 + (a >> 40) % 0xfffe
                    )?;
                    st.records += 1;
                }
            }
        } else {
            let pi = provider(&mut rng, providers);
            let tld = TLDS[(pi % TLDS.len() as u64) as usize];
            let suffix = PROVIDER_SUFFIX[((pi / 7) % PROVIDER_SUFFIX.len() as u64) as usize];
            for k in 1..=nns {
                writeln!(w, "{d} 3600 IN NS ns{k}.provider{pi}{suffix}.{tld}.")?;
                st.records += 1;
            }
        }
        if rng.chance(35) {
            st.secure += 1;
            let tag = rng.below(65536);
            write!(w, "{d} 3600 IN DS {tag} 13 2 ")?;
            for _ in 0..4 {
                write!(w, "{:016X}", rng.next())?;
            }
            writeln!(w)?;
            st.records += 1;
        }
        if let Some(n) = names.as_deref_mut() {
            n.push(d);
        }
        st.delegations += 1;
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(n: usize, seed: u64) -> (Vec<u8>, GenStats) {
        let mut out = Vec::new();
        let st = write_zone(
            &GenParams {
                origin: "be".into(),
                delegations: n,
                seed,
            },
            &mut out,
        )
        .unwrap();
        (out, st)
    }

    #[test]
    fn deterministic_and_shaped_like_a_tld() {
        let (a, st) = gen(10_000, 7);
        let (b, _) = gen(10_000, 7);
        assert_eq!(a, b);
        assert_ne!(a, gen(10_000, 8).0);
        assert_eq!(st.delegations, 10_000);
        assert!((3_200..3_800).contains(&st.secure), "{st:?}");
        assert!((600..1_000).contains(&st.with_glue), "{st:?}");
        // The zone loads and passes the checks.
        let dir = std::env::temp_dir().join(format!("belfry-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("g.zone");
        std::fs::write(&f, &a).unwrap();
        let z = crate::zone::load_file(&f, b"\x02be\x00").unwrap();
        assert_eq!(z.stats.delegations, 10_000);
        assert_eq!(z.stats.secure_delegations, st.secure);
        assert_eq!(z.stats.records, st.records);
        std::fs::remove_dir_all(&dir).unwrap();
        let names = domain_names(&GenParams {
            origin: "be".into(),
            delegations: 100,
            seed: 7,
        });
        assert_eq!(names.len(), 100);
        assert!(String::from_utf8_lossy(&a).contains(&format!("\n{} 3600 IN NS", names[0])));
    }
}
