//! bf16 autocast for the forward passes (`precision: bf16`). tch 0.24 binds libtorch's autocast only as
//! an on/off switch for CUDA at its default fp16, so the per-device switch and dtype are called through
//! their symbols in libtorch_cpu (`at::autocast::{set,is}_autocast_enabled`, `{set,get}_autocast_dtype`,
//! present since PyTorch 2.4), with the nesting and cast-cache calls tch does bind — what
//! `torch.autocast(device_type, dtype=torch.bfloat16)` does on entry and exit.
//!
//! Only forward passes (and the loss on their logits) run under it, never a backward pass (PyTorch's
//! advice: the backward runs in the dtypes the forward chose). Under autocast libtorch runs
//! convolutions, matrix products and linear layers in bf16 and keeps reductions, softmax and the loss in
//! fp32; the weights, their gradients and the optimiser state stay fp32 (bf16 has fp32's exponent
//! range, so no loss scaling is needed). The logits come back as fp32.

use std::ffi::CStr;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::config::Precision;
use crate::device::libtorch_symbol;

/// `c10::DeviceType` and `c10::ScalarType` values (c10/core/DeviceType.h, ScalarType.h).
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
const SCALAR_BFLOAT16: i8 = 15;

const SET_ENABLED: &CStr = c"_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb";
const IS_ENABLED: &CStr = c"_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE";
const SET_DTYPE: &CStr = c"_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE";
const GET_DTYPE: &CStr = c"_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE";

/// The four per-device functions, resolved once.
#[derive(Clone, Copy)]
struct Api {
    set_enabled: extern "C" fn(i8, bool),
    is_enabled: extern "C" fn(i8) -> bool,
    set_dtype: extern "C" fn(i8, i8),
    get_dtype: extern "C" fn(i8) -> i8,
}

fn api() -> Result<Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| {
        let find = |name: &CStr| {
            libtorch_symbol(name).ok_or_else(|| {
                format!(
                    "this libtorch lacks {} (PyTorch ≥ 2.4 has it)",
                    name.to_string_lossy()
                )
            })
        };
        let (se, ie, sd, gd) = (
            find(SET_ENABLED)?,
            find(IS_ENABLED)?,
            find(SET_DTYPE)?,
            find(GET_DTYPE)?,
        );
        // SAFETY: the symbols are these C++ functions; `c10::DeviceType` and `c10::ScalarType` are
        // `enum class : int8_t` (passed as int8_t), C++ `bool` is Rust `bool`; a function pointer is
        // pointer-sized.
        unsafe {
            Ok(Api {
                set_enabled: std::mem::transmute_copy(&se),
                is_enabled: std::mem::transmute_copy(&ie),
                set_dtype: std::mem::transmute_copy(&sd),
                get_dtype: std::mem::transmute_copy(&gd),
            })
        }
    })
    .clone()
}

/// The precision a network's forward passes run in; `Copy`, held by whatever runs forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amp {
    precision: Precision,
}

impl Amp {
    /// Checks that this libtorch can run `precision` (bf16 needs the autocast symbols).
    pub fn new(precision: Precision) -> Result<Amp> {
        if precision == Precision::Bf16 {
            if let Err(why) = api() {
                bail!("`precision: bf16` cannot run: {why}; use `precision: fp32`");
            }
        }
        Ok(Amp { precision })
    }

    /// Runs `f` (forward passes only) on tensors of `device` in this precision.
    pub fn run<T>(&self, device: Device, f: impl FnOnce() -> T) -> T {
        match self.precision {
            Precision::Fp32 => f(),
            Precision::Bf16 => {
                let _on = Guard::enter(device);
                f()
            }
        }
    }

    /// [`Amp::run`] of a forward whose output (logits) comes back in fp32 where autocast left it bf16.
    pub fn forward(&self, device: Device, f: impl FnOnce() -> Tensor) -> Tensor {
        Amp::fp32(self.run(device, f))
    }

    /// `t` in fp32 if it is bf16, else unchanged.
    pub fn fp32(t: Tensor) -> Tensor {
        if t.kind() == Kind::BFloat16 {
            t.to_kind(Kind::Float)
        } else {
            t
        }
    }
}

/// bf16 autocast on one device type for its lifetime; restores the previous state on drop.
struct Guard {
    api: Api,
    device: i8,
    was_enabled: bool,
    was_dtype: i8,
}

impl Guard {
    fn enter(device: Device) -> Guard {
        let api = api().expect("Amp::new checked the autocast symbols");
        let device = if device.is_cuda() {
            DEVICE_CUDA
        } else {
            DEVICE_CPU
        };
        let g = Guard {
            api,
            device,
            was_enabled: (api.is_enabled)(device),
            was_dtype: (api.get_dtype)(device),
        };
        (api.set_enabled)(device, true);
        (api.set_dtype)(device, SCALAR_BFLOAT16);
        // SAFETY: plain calls into libtorch's thread-local autocast state.
        unsafe { torch_sys::at_autocast_increment_nesting() };
        g
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: as in `enter`; the cast cache (bf16 copies of the weights) is freed at the outermost exit.
        unsafe {
            if torch_sys::at_autocast_decrement_nesting() == 0 {
                torch_sys::at_autocast_clear_cache();
            }
        }
        (self.api.set_enabled)(self.device, self.was_enabled);
        (self.api.set_dtype)(self.device, self.was_dtype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module};

    fn net(vs: &nn::Path) -> impl Module {
        nn::seq()
            .add(nn::conv2d(vs / "c", 3, 8, 3, Default::default()))
            .add_fn(|x| x.relu().mean_dim([2i64, 3].as_slice(), false, Kind::Float))
            .add(nn::linear(vs / "l", 8, 4, Default::default()))
    }

    #[test]
    fn bf16_runs_the_convolution_in_bf16_and_returns_fp32_logits_close_to_fp32() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = net(&vs.root());
        let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
        let fp32 = Amp::new(Precision::Fp32).unwrap();
        let bf16 = Amp::new(Precision::Bf16).unwrap();
        let conv = nn::conv2d(vs.root() / "probe", 3, 8, 3, Default::default());
        // inside the region a convolution really runs in bf16; outside it does not
        let inner = bf16.forward(Device::Cpu, || {
            let y = x.apply(&conv);
            assert_eq!(y.kind(), Kind::BFloat16, "autocast did not take effect");
            y.sum(Kind::Float)
        });
        assert_eq!(inner.kind(), Kind::Float);
        assert_eq!(x.apply(&conv).kind(), Kind::Float, "autocast leaked out");
        let a = fp32.forward(Device::Cpu, || m.forward(&x));
        let b = bf16.forward(Device::Cpu, || m.forward(&x));
        assert_eq!(b.kind(), Kind::Float);
        assert_ne!(
            a, b,
            "bf16 gave bit-identical logits: it did not run in bf16"
        );
        // bf16 keeps 8 bits of mantissa: relative error ~2^-8 per product, a few 1e-2 at most here
        let err = (&a - &b).abs().max().double_value(&[]);
        let scale = a.abs().max().double_value(&[]).max(1e-3);
        assert!(err / scale < 5e-2, "bf16 logits {err} off (scale {scale})");
        // the gradient of a bf16 forward reaches the fp32 weights in fp32
        b.sum(Kind::Float).backward();
        for (name, w) in vs.variables() {
            if name.starts_with("probe") {
                continue;
            }
            assert_eq!(w.grad().kind(), Kind::Float, "{name}");
            assert!(
                w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name}"
            );
        }
    }
}
