//! A generated, signed zone and its publisher, for benchmarks and examples
//! (`benches/`, `examples/list_heap.rs`): the same set-up everywhere, so their
//! figures are comparable.

use super::{initial_dnssec, Publisher, Settings, Sinks};
use crate::dnssec::key::{self, Algorithm, KeyRole, SigningKey};
use crate::dnssec::{Policy, Signer};
use crate::zone::generate::{self, GenParams};
use crate::zone::Zone;
use std::path::Path;
use std::sync::Arc;

/// Write the synthetic `.be` zone of `delegations` (seed 1) to `path`, load it,
/// and return it with its delegated names (in generation order).
pub fn generated_zone(path: &Path, delegations: usize) -> Result<(Zone, Vec<String>), String> {
    let p = GenParams {
        origin: "be".into(),
        delegations,
        seed: 1,
    };
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    generate::write_zone(&p, &mut w).map_err(|e| format!("{}: {e}", path.display()))?;
    drop(w);
    let origin = crate::name::from_text("be.", &[0]).expect("a valid origin");
    let zone = crate::zone::load_file(path, &origin).map_err(|e| e.to_string())?;
    Ok((zone, generate::domain_names(&p)))
}

/// A publisher of `zone` signed with a fresh ECDSA P-256 CSK (NSEC3 as the
/// default policy has it), with no list, default settings and no sinks.
pub fn signed_publisher(mut zone: Zone) -> Result<Publisher, String> {
    let der = key::generate(Algorithm::EcdsaP256Sha256).map_err(|e| e.to_string())?;
    let k = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, KeyRole::Csk, &der)
        .map_err(|e| e.to_string())?;
    let signer =
        Signer::new(zone.origin(), vec![k], Policy::default()).map_err(|e| e.to_string())?;
    let dnssec = initial_dnssec(&mut zone, Arc::new(signer)).map_err(|e| e.to_string())?;
    let serial = zone.serial();
    Publisher::new(
        zone,
        Some(dnssec),
        Vec::new(),
        serial,
        Settings::default(),
        Sinks::default(),
    )
    .map_err(|e| e.to_string())
}
