//! What a latency number was measured on: the device, its name, the driver, libtorch's version and
//! the CPU threads libtorch used. Every latency the harness writes carries one.

use serde::{Deserialize, Serialize};

use crate::results::provenance::{nvidia_smi, LIBTORCH_VERSION};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStamp {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// GPU model (nvidia-smi) or CPU model (/proc/cpuinfo).
    pub device_name: String,
    /// NVIDIA driver version; `none` on the CPU.
    pub driver: String,
    pub libtorch: String,
    /// libtorch's intra-op threads at measurement time.
    pub threads: i64,
}

impl DeviceStamp {
    pub fn of(device: tch::Device) -> DeviceStamp {
        let (device_name, driver) = match device {
            tch::Device::Cuda(i) => {
                nvidia_smi(i).unwrap_or_else(|_| ("unknown GPU".into(), "unknown".into()))
            }
            _ => (cpu_name(), "none".into()),
        };
        DeviceStamp {
            device: crate::device::describe(device),
            device_name,
            driver,
            libtorch: LIBTORCH_VERSION.into(),
            threads: tch::get_num_threads() as i64,
        }
    }

    /// `cuda:0 (NVIDIA H200, driver 550.54, libtorch 2.11.0, 16 threads)`.
    pub fn label(&self) -> String {
        format!(
            "{} ({}, driver {}, libtorch {}, {} threads)",
            self.device, self.device_name, self.driver, self.libtorch, self.threads
        )
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}
