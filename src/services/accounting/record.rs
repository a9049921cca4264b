//! The four record types APEL accepts from a cloud site.
//!
//! Field names follow the APEL message formats: the cloud usage record
//! v0.4 and public IP record v0.2 (EGI's accounting record definitions),
//! the accelerator record v0.1 (apel/apel pull request 459) and the EMI
//! StAR storage record (EMI StAR 1.0). Times are Unix seconds in UTC: the
//! records are correct whatever the host's time zone is.

/// A VM's state as the cloud record reports it (the APEL cloud `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmStatus {
    Started,
    Completed,
    Error,
    Paused,
    Suspended,
    Stopped,
    Unknown,
}

impl VmStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VmStatus::Started => "started",
            VmStatus::Completed => "completed",
            VmStatus::Error => "error",
            VmStatus::Paused => "paused",
            VmStatus::Suspended => "suspended",
            VmStatus::Stopped => "stopped",
            VmStatus::Unknown => "unknown",
        }
    }

    /// The status of a Nova server `status` (any case), mapped the way the
    /// APEL cloud record defines its states: a server that exists and may
    /// run is `started`, one that is gone is `completed`.
    pub fn from_nova(status: &str) -> VmStatus {
        match status.to_ascii_lowercase().as_str() {
            "active" | "build" | "confirming_resize" | "hard_reboot" | "migrating" | "reboot"
            | "rebuild" | "rescue" | "resize" | "revert_resize" | "verify_resize" | "saving"
            | "password" => VmStatus::Started,
            "deleted" | "shutoff" | "terminated" => VmStatus::Completed,
            "error" => VmStatus::Error,
            "paused" => VmStatus::Paused,
            "suspended" => VmStatus::Suspended,
            "stopped" => VmStatus::Stopped,
            _ => VmStatus::Unknown,
        }
    }
}

/// Cloud usage record v0.4: one VM, with durations cumulative since
/// `start_time` (the APEL repository replaces the month's previous record
/// for the VM, so deltas would undercount).
#[derive(Debug, Clone, PartialEq)]
pub struct CloudRecord {
    pub vm_uuid: String,
    pub site_name: String,
    pub cloud_compute_service: String,
    pub cloud_type: String,
    pub machine_name: String,
    pub local_user_id: String,
    pub local_group_id: String,
    pub global_user_name: Option<String>,
    pub fqan: String,
    pub status: VmStatus,
    pub start_time: i64,
    /// 0 while the VM runs.
    pub end_time: i64,
    pub wall_duration: i64,
    pub cpu_duration: i64,
    pub cpu_count: u32,
    /// MB.
    pub memory: u64,
    /// GB.
    pub disk: u64,
    pub public_ip_count: u32,
    /// Sent only together with `benchmark`.
    pub benchmark_type: Option<String>,
    pub benchmark: Option<f64>,
    pub image_id: Option<String>,
}

/// Public IP record v0.2: the floating IPs of one project and IP version
/// at `measurement_time`.
#[derive(Debug, Clone, PartialEq)]
pub struct IpRecord {
    pub site_name: String,
    pub cloud_type: String,
    pub cloud_compute_service: String,
    /// cASO sends a random UUID under `uuid`; no APEL schema defines it.
    pub uuid: Option<String>,
    pub local_group: String,
    pub fqan: String,
    pub ip_version: u8,
    pub ip_count: u64,
    pub measurement_time: i64,
}

/// Accelerator record v0.1: one VM's accelerators over one calendar month.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceleratorRecord {
    pub measurement_month: u8,
    pub measurement_year: i32,
    /// The VM's UUID; `AssociatedRecordType` is always `cloud`.
    pub associated_record: String,
    pub global_user_name: Option<String>,
    pub fqan: String,
    pub site_name: String,
    pub cloud_compute_service: String,
    pub cloud_type: String,
    pub count: u32,
    pub available_duration: i64,
    pub active_duration: i64,
    /// `GPU`, `FPGA` or `Other`.
    pub kind: String,
    /// `"<vendor> <model>"`.
    pub model: String,
}

/// EMI StAR storage record: one block-storage volume.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRecord {
    /// The volume UUID.
    pub record_id: String,
    /// Unix time with microseconds.
    pub create_time: (i64, u32),
    pub storage_system: String,
    pub site: String,
    pub local_user: String,
    pub local_group: String,
    pub user_identity: Option<String>,
    /// The VO.
    pub group: String,
    pub start_time: i64,
    pub end_time: i64,
    /// Bytes.
    pub capacity_used: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_statuses() {
        assert_eq!(VmStatus::from_nova("ACTIVE"), VmStatus::Started);
        assert_eq!(VmStatus::from_nova("Verify_Resize"), VmStatus::Started);
        assert_eq!(VmStatus::from_nova("SHUTOFF"), VmStatus::Completed);
        assert_eq!(VmStatus::from_nova("deleted"), VmStatus::Completed);
        assert_eq!(VmStatus::from_nova("ERROR"), VmStatus::Error);
        assert_eq!(VmStatus::from_nova("PAUSED"), VmStatus::Paused);
        assert_eq!(VmStatus::from_nova("SUSPENDED"), VmStatus::Suspended);
        assert_eq!(VmStatus::from_nova("stopped"), VmStatus::Stopped);
        assert_eq!(VmStatus::from_nova("SHELVED_OFFLOADED"), VmStatus::Unknown);
    }
}
