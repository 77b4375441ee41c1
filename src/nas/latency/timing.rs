//! Timing a forward pass on a device (`unas.py:compute_latency`): synchronise, run, synchronise, for
//! `warmup` untimed passes and then `repeats` timed ones; the latency is the median in ms.

use std::time::Instant;

use tch::Device;

/// How a latency is measured: untimed warm-up passes, then the median of `repeats` timed ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub warmup: u32,
    pub repeats: u32,
}

/// Waits for the device's queued work (`torch.cuda.synchronize()`); the CPU runs synchronously.
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The median of `repeats` synchronised runs of `run`, in ms, after `warmup` untimed runs.
pub fn measure_ms(device: Device, timing: Timing, mut run: impl FnMut()) -> f64 {
    for _ in 0..timing.warmup {
        run();
    }
    let mut times = Vec::with_capacity(timing.repeats as usize);
    for _ in 0..timing.repeats.max(1) {
        sync(device);
        let start = Instant::now();
        run();
        sync(device);
        times.push(start.elapsed().as_secs_f64() * 1e3); // ms
    }
    median(&mut times)
}

/// The median (the mean of the middle two for an even count, as `np.median`).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn measure_runs_warmup_plus_repeats_times() {
        let mut calls = 0;
        let ms = measure_ms(
            Device::Cpu,
            Timing {
                warmup: 2,
                repeats: 5,
            },
            || calls += 1,
        );
        assert_eq!(calls, 7);
        assert!(ms >= 0.0);
    }
}
