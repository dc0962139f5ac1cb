//! The simulated accelerator fleet: which GPU/TPU types exist, how many of each, and how many are
//! free given the GPUs that active jobs hold.

use serde::Serialize;

/// One accelerator type of the fleet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GpuModel {
    /// Stable identifier clients send as `gpu_type`.
    pub(crate) id: &'static str,
    /// Marketing name.
    pub(crate) name: &'static str,
    /// Memory per accelerator, GiB.
    pub(crate) memory_gib: u32,
    /// Accelerators of this type in the fleet.
    pub(crate) total: u32,
}

/// A catalog entry as served by `GET /v1/gpus`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct GpuAvailability {
    #[serde(rename = "type")]
    pub(crate) gpu_type: &'static str,
    pub(crate) name: &'static str,
    pub(crate) memory_gib: u32,
    pub(crate) total: u32,
    pub(crate) free: u32,
}

/// Why a job's GPUs cannot be reserved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CapacityError {
    /// More accelerators than the fleet has at all: the request can never succeed.
    #[error("gpu_count {requested} exceeds the fleet's {total} {gpu_type} accelerators")]
    ExceedsFleet {
        gpu_type: &'static str,
        requested: u32,
        total: u32,
    },
    /// The fleet has enough, but not enough are free now.
    #[error("{requested} {gpu_type} requested but only {free} free")]
    NotEnoughFree {
        gpu_type: &'static str,
        requested: u32,
        free: u32,
    },
}

/// The fleet: a realistic mix for a mid-sized training cloud. Sizes are per accelerator.
pub(crate) const FLEET: &[GpuModel] = &[
    GpuModel {
        id: "a100",
        name: "NVIDIA A100 80GB SXM4",
        memory_gib: 80,
        total: 256,
    },
    GpuModel {
        id: "h100",
        name: "NVIDIA H100 80GB HBM3",
        memory_gib: 80,
        total: 512,
    },
    GpuModel {
        id: "h200",
        name: "NVIDIA H200 141GB HBM3e",
        memory_gib: 141,
        total: 256,
    },
    GpuModel {
        id: "b200",
        name: "NVIDIA B200 180GB HBM3e",
        memory_gib: 180,
        total: 128,
    },
    GpuModel {
        id: "mi300x",
        name: "AMD Instinct MI300X 192GB HBM3",
        memory_gib: 192,
        total: 128,
    },
    GpuModel {
        id: "tpu-v5p",
        name: "Google Cloud TPU v5p",
        memory_gib: 95,
        total: 1024,
    },
];

/// The fleet entry for `gpu_type`, if the fleet has that type.
pub(crate) fn find(gpu_type: &str) -> Option<&'static GpuModel> {
    FLEET.iter().find(|m| m.id == gpu_type)
}

/// Comma-separated list of the known types, for error messages.
pub(crate) fn known_types() -> String {
    FLEET.iter().map(|m| m.id).collect::<Vec<_>>().join(", ")
}

/// The catalog given `in_use(gpu_type)`, the accelerators active jobs hold per type.
pub(crate) fn availability(in_use: impl Fn(&str) -> u32) -> Vec<GpuAvailability> {
    FLEET
        .iter()
        .map(|m| GpuAvailability {
            gpu_type: m.id,
            name: m.name,
            memory_gib: m.memory_gib,
            total: m.total,
            free: m.total.saturating_sub(in_use(m.id)),
        })
        .collect()
}

/// Whether `requested` more accelerators of `model` fit when `in_use` are already held.
pub(crate) fn check_capacity(
    model: &'static GpuModel,
    in_use: u32,
    requested: u32,
) -> Result<(), CapacityError> {
    if requested > model.total {
        return Err(CapacityError::ExceedsFleet {
            gpu_type: model.id,
            requested,
            total: model.total,
        });
    }
    let free = model.total.saturating_sub(in_use);
    if requested > free {
        return Err(CapacityError::NotEnoughFree {
            gpu_type: model.id,
            requested,
            free,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> &'static GpuModel {
        find("h100").expect("h100 is in the fleet")
    }

    #[test]
    fn fleet_ids_are_unique_and_findable() {
        for m in FLEET {
            assert_eq!(find(m.id), Some(m));
            assert!(m.total > 0 && m.memory_gib > 0);
        }
        assert_eq!(find("H100"), None);
        assert_eq!(find("v100"), None);
        assert!(known_types().contains("tpu-v5p"));
    }

    #[test]
    fn availability_subtracts_what_is_in_use() {
        let cat = availability(|t| if t == "h100" { 40 } else { 0 });
        let h = cat
            .iter()
            .find(|e| e.gpu_type == "h100")
            .expect("h100 entry");
        assert_eq!((h.total, h.free), (512, 472));
        let a = cat
            .iter()
            .find(|e| e.gpu_type == "a100")
            .expect("a100 entry");
        assert_eq!(a.free, a.total);
        let over = availability(|_| u32::MAX);
        assert!(over.iter().all(|e| e.free == 0));
    }

    #[test]
    fn capacity_checks() {
        assert_eq!(check_capacity(h100(), 0, 512), Ok(()));
        assert_eq!(check_capacity(h100(), 504, 8), Ok(()));
        assert_eq!(
            check_capacity(h100(), 505, 8),
            Err(CapacityError::NotEnoughFree {
                gpu_type: "h100",
                requested: 8,
                free: 7
            })
        );
        assert_eq!(
            check_capacity(h100(), 0, 513),
            Err(CapacityError::ExceedsFleet {
                gpu_type: "h100",
                requested: 513,
                total: 512
            })
        );
    }

    #[test]
    fn catalog_serializes_with_type_key() {
        let json = serde_json::to_value(&availability(|_| 0)[0]).expect("serializes");
        assert_eq!(json["type"], "a100");
        assert_eq!(json["memory_gib"], 80);
        assert_eq!(json["free"], 256);
    }
}
