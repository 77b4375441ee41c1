//! Config identity: blake3 over a canonical JSON serialisation of the resolved experiment and its tier.
//! Canonical = keys sorted at every level, numbers in serde_json's shortest round-trip form (so `6e-4`,
//! `6.0e-4` and `0.0006` are one value), no whitespace. Documentation-only fields (`description`,
//! `deviations`) and the `device` choice do not change what is computed and are left out, so editing a
//! description or moving a run from CPU to GPU does not invalidate finished results.

use serde_json::Value;

use super::schema::Experiment;
use super::tier::Tier;

/// Fields that do not enter the id.
pub const NOT_IN_ID: [&str; 5] = ["description", "deviations", "device", "sweep", "sweep_of"];

/// Canonical JSON text of any serialisable value (sorted keys, compact).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("string serialises"));
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalar serialises")),
    }
}

/// The experiment part of the id, as canonical JSON.
pub fn canonical_experiment(e: &Experiment, tier: Tier) -> String {
    let mut v = serde_json::to_value(e).expect("experiment serialises");
    if let Value::Object(m) = &mut v {
        for k in NOT_IN_ID {
            m.remove(k);
        }
        m.insert("tier".into(), Value::String(tier.as_str().into()));
    }
    canonical_json(&v)
}

/// Hex blake3 of [`canonical_experiment`].
pub fn config_id(e: &Experiment, tier: Tier) -> String {
    blake3::hash(canonical_experiment(e, tier).as_bytes())
        .to_hex()
        .to_string()
}

/// Hex blake3 over labelled parts (`stage=search`, upstream ids, ...), for run ids.
pub fn hash_parts(parts: &[(&str, &str)]) -> String {
    let mut h = blake3::Hasher::new();
    for (k, v) in parts {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"y": [2, {"d": 0, "c": 1}], "x": 0.0006}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":0.0006,"y":[2,{"c":1,"d":0}]},"b":1}"#
        );
    }

    #[test]
    fn labelled_parts_cannot_collide_by_concatenation() {
        assert_ne!(hash_parts(&[("a", "bc")]), hash_parts(&[("ab", "c")]));
        assert_ne!(
            hash_parts(&[("a", "b"), ("c", "")]),
            hash_parts(&[("a", "bc")])
        );
    }
}
