//! The linear latency surrogate (`surrogate.py:SurrogateLinear`, spec §4): ridge regression of
//! measured latency on the one-hot architecture vector x (141 entries in the ProxylessNAS space),
//! with a bias column, w = (XᵀX + λI)⁻¹Xᵀy (the bias regularised too, as officially), fitted once on
//! an 80/20 split; s(x) = wᵀx + b₀ is differentiable in x, so it can be evaluated on a relaxed sample.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::data::rng::Mt19937;

/// How well the fit predicts: on its 80 % and on the held-out 20 %.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub n_train: usize,
    pub n_test: usize,
    pub ridge: f64,
    pub mae_train_ms: f64,
    pub mae_test_ms: f64,
    /// 1 − SS_res/SS_tot on the held-out split; NaN where the held-out latencies are all equal
    /// (JSON writes it as null, read back as NaN).
    #[serde(deserialize_with = "null_as_nan")]
    pub r2_test: f64,
}

/// A number JSON may hold as null (serde_json writes a non-finite f64 so): null reads back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A fitted surrogate: per-feature weights (ms) and the bias (ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Surrogate {
    pub weights: Vec<f64>,
    pub bias_ms: f64,
    pub fit: FitReport,
}

pub use crate::config::limits::MIN_SAMPLES;

impl Surrogate {
    /// Fits on rows `x` (features) and latencies `y` (ms); the 80/20 split is a permutation seeded by
    /// `seed`, so a fit is a pure function of (x, y, ridge, seed).
    pub fn fit(x: &[Vec<f64>], y: &[f64], ridge: f64, seed: u64) -> Result<Surrogate> {
        let n = x.len();
        ensure!(
            n == y.len() && n >= MIN_SAMPLES,
            "the surrogate needs at least {MIN_SAMPLES} measured architectures (its 20 % test split holds two), got {n}"
        );
        let d = x[0].len();
        let perm = Mt19937::new(seed).randperm(n);
        let n_test = n / 5;
        let (test, train) = perm.split_at(n_test);
        let rows = |idx: &[i64]| -> (Tensor, Tensor) {
            let flat: Vec<f64> = idx
                .iter()
                .flat_map(|&i| x[i as usize].iter().copied().chain([1.0])) // bias column
                .collect();
            let ys: Vec<f64> = idx.iter().map(|&i| y[i as usize]).collect();
            (
                Tensor::from_slice(&flat).reshape([idx.len() as i64, d as i64 + 1]),
                Tensor::from_slice(&ys),
            )
        };
        let (x_tr, y_tr) = rows(train);
        let (x_te, y_te) = rows(test);
        let eye = Tensor::eye(d as i64 + 1, (Kind::Double, Device::Cpu));
        let a = x_tr.transpose(0, 1).matmul(&x_tr) + eye * ridge; // XᵀX + λI
        let b = x_tr.transpose(0, 1).matmul(&y_tr.unsqueeze(1)); // Xᵀy
        let w = Tensor::linalg_solve(&a, &b, true).squeeze_dim(1); // (XᵀX + λI)⁻¹Xᵀy
        let mae = |xs: &Tensor, ys: &Tensor| {
            (xs.matmul(&w) - ys)
                .abs()
                .mean(Kind::Double)
                .double_value(&[])
        };
        let pred_te = x_te.matmul(&w);
        let ss_res = (&pred_te - &y_te)
            .square()
            .sum(Kind::Double)
            .double_value(&[]);
        let ss_tot = (&y_te - y_te.mean(Kind::Double))
            .square()
            .sum(Kind::Double)
            .double_value(&[]);
        let w: Vec<f64> = Vec::<f64>::try_from(&w)?;
        let fit = FitReport {
            n_train: train.len(),
            n_test,
            ridge,
            mae_train_ms: mae(&x_tr, &y_tr),
            mae_test_ms: mae(&x_te, &y_te),
            r2_test: if ss_tot > 0.0 {
                1.0 - ss_res / ss_tot
            } else {
                f64::NAN
            }, // 1 − SS_res/SS_tot
        };
        Ok(Surrogate {
            weights: w[..d].to_vec(),
            bias_ms: w[d],
            fit,
        })
    }

    /// s(x) = wᵀx + b₀ for x [N, D] (one-hot or relaxed), [N], differentiable in x.
    pub fn predict(&self, x: &Tensor) -> Tensor {
        let w = Tensor::from_slice(&self.weights)
            .to_kind(x.kind())
            .to_device(x.device());
        x.matmul(&w) + self.bias_ms
    }

    /// The surrogate as one vector of numbers, for sending it to other ranks bit for bit (NaN
    /// included): [bias, n_train, n_test, ridge, mae_train, mae_test, r2_test, weights…].
    pub fn to_f64s(&self) -> Vec<f64> {
        let f = &self.fit;
        let head = [
            self.bias_ms,
            f.n_train as f64,
            f.n_test as f64,
            f.ridge,
            f.mae_train_ms,
            f.mae_test_ms,
            f.r2_test,
        ];
        head.into_iter()
            .chain(self.weights.iter().copied())
            .collect()
    }

    /// The surrogate [`Surrogate::to_f64s`] wrote.
    pub fn from_f64s(v: &[f64]) -> Result<Surrogate> {
        const HEAD: usize = 7;
        ensure!(
            v.len() > HEAD,
            "a packed latency surrogate holds {HEAD} numbers and its weights, got {} numbers",
            v.len()
        );
        Ok(Surrogate {
            weights: v[HEAD..].to_vec(),
            bias_ms: v[0],
            fit: FitReport {
                n_train: v[1] as usize,
                n_test: v[2] as usize,
                ridge: v[3],
                mae_train_ms: v[4],
                mae_test_ms: v[5],
                r2_test: v[6],
            },
        })
    }

    /// A short fingerprint of the surrogate's numbers (blake3 of their bits), for telling in a log
    /// whether two processes use the same one.
    pub fn digest(&self) -> String {
        let bytes: Vec<u8> = self
            .to_f64s()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        blake3::hash(&bytes).to_hex()[..16].to_owned()
    }

    /// s(x) of one feature row on the host.
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + self.bias_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::{Purpose, SplitMix64};

    /// 21 blocks of 7 one-hot choices; latency = Σ_blocks cost[b][k] + 2 ms + small noise.
    fn synthetic(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>, Vec<Vec<f64>>) {
        let mut r = SplitMix64::new(seed, Purpose::Shuffle, 0, 0);
        let cost: Vec<Vec<f64>> = (0..21)
            .map(|_| (0..7).map(|_| r.range(0.0, 1.0)).collect())
            .collect();
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let mut x = vec![0.0; 21 * 7];
            let mut y = 2.0;
            for (b, c) in cost.iter().enumerate() {
                let k = r.below(7) as usize;
                x[b * 7 + k] = 1.0;
                y += c[k];
            }
            xs.push(x);
            ys.push(y + 0.01 * r.normal());
        }
        (xs, ys, cost)
    }

    #[test]
    fn surrogate_recovers_an_additive_latency_model_and_is_deterministic() {
        let (x, y, cost) = synthetic(3000, 0);
        let s = Surrogate::fit(&x, &y, 1.0, 7).unwrap();
        assert!(s.fit.r2_test > 0.99, "{:?}", s.fit);
        assert_eq!((s.fit.n_train, s.fit.n_test), (2400, 600));
        assert!(s.fit.mae_test_ms < 0.05, "{:?}", s.fit);
        // within a block only differences are identified (each block's one-hot sums to 1)
        for (b, c) in cost.iter().enumerate() {
            for k in 1..7 {
                let got = s.weights[b * 7 + k] - s.weights[b * 7];
                assert!(
                    (got - (c[k] - c[0])).abs() < 0.02,
                    "block {b} op {k}: {got}"
                );
            }
        }
        assert_eq!(Surrogate::fit(&x, &y, 1.0, 7).unwrap(), s);
        assert_ne!(Surrogate::fit(&x, &y, 1.0, 8).unwrap().weights, s.weights);
        // the tensor path agrees with the host path
        let t = Tensor::from_slice(&x[0]).reshape([1, -1]);
        let p = s.predict(&t).double_value(&[0]);
        assert!((p - s.predict_row(&x[0])).abs() < 1e-9);
    }

    #[test]
    fn a_packed_surrogate_unpacks_bit_for_bit_and_its_digest_follows_its_bits() {
        let (x, y, _) = synthetic(40, 2);
        let mut s = Surrogate::fit(&x, &y, 0.3, 1).unwrap();
        s.fit.r2_test = f64::NAN; // a fit whose held-out latencies were all equal
        let back = Surrogate::from_f64s(&s.to_f64s()).unwrap();
        let bits =
            |s: &Surrogate| -> Vec<u64> { s.to_f64s().iter().map(|v| v.to_bits()).collect() };
        assert_eq!(bits(&back), bits(&s));
        assert_eq!(
            (back.fit.n_train, back.fit.n_test, back.weights.len()),
            (32, 8, 147)
        );
        assert_eq!(back.digest(), s.digest());
        // and through the JSON of the run folder and the cache (null there), as a resume reads it
        let json: Surrogate = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(json.fit.r2_test.is_nan());
        assert_eq!(json.weights, s.weights);
        let mut other = s.clone();
        other.weights[100] = f64::from_bits(other.weights[100].to_bits() ^ 1); // one ulp
        assert_ne!(other.digest(), s.digest());
        assert!(Surrogate::from_f64s(&s.to_f64s()[..7]).is_err());
    }

    #[test]
    fn too_few_samples_for_the_split_are_refused() {
        let (x, y, _) = synthetic(9, 1);
        let err = Surrogate::fit(&x, &y, 1.0, 0).unwrap_err().to_string();
        assert!(err.contains("at least 10"), "{err}");
    }
}
