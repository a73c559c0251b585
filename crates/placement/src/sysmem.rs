//! Host memory as a process sees it: `/proc/meminfo`'s `MemAvailable`, capped by the
//! memory limit of the cgroup the process runs in (v2 `memory.max`, v1
//! `memory.limit_in_bytes`) — a container's limit, not the host's.
//!
//! The parsers take text so they can be tested with fixtures; [`cpu_memory_with`] reads
//! files through a closure for the same reason.

use std::path::Path;

use crate::PlacementError;

/// Cgroup v1 reports "no limit" as a huge page-rounded number; anything at or above
/// this is treated as unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// Host memory from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`, bytes.
    pub total: u64,
    /// `MemAvailable`, bytes (`MemFree` on kernels older than 3.14).
    pub available: u64,
}

/// `/proc/meminfo` text -> totals in bytes; `None` when `MemTotal` is missing.
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            kb.checked_mul(1024)
        })
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").or_else(|| field("MemFree"))?;
    Some(MemInfo { total, available })
}

/// Where this process sits in the cgroup hierarchies, from `/proc/self/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMembership {
    /// The unified (v2) path, from the `0::PATH` line.
    pub v2: Option<String>,
    /// The v1 memory controller's path, from the `N:...memory...:PATH` line.
    pub v1_memory: Option<String>,
}

/// `/proc/self/cgroup` text -> the v2 path and the v1 memory path.
pub fn parse_proc_cgroup(text: &str) -> CgroupMembership {
    let mut m = CgroupMembership::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            m.v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            m.v1_memory = Some(path.to_string());
        }
    }
    m
}

/// A cgroup limit file (`memory.max`, `memory.limit_in_bytes`): `None` for `max` or a
/// v1 "unlimited" value, or for text that is not a number.
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok().filter(|&v| v < V1_UNLIMITED)
}

/// One counter from a `memory.stat` file (`inactive_file`, `total_inactive_file`).
pub fn parse_memory_stat(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Host memory after cgroup limits, with where the numbers came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMemory {
    /// Total bytes: `MemTotal`, or the cgroup limit when lower.
    pub total: u64,
    /// Available bytes: `MemAvailable`, or what the cgroup still allows when lower.
    pub available: u64,
    /// A human sentence naming the limit that applied, when a cgroup limit did.
    pub limit: Option<String>,
}

/// Reads host memory through `read` (a path -> file contents function): `/proc/meminfo`,
/// `/proc/self/cgroup`, and the memory files of this process's cgroup and of every
/// ancestor (the tightest limit wins; page cache that can be reclaimed,
/// `inactive_file`, counts as available).
pub fn cpu_memory_with(read: &dyn Fn(&str) -> Option<String>) -> Result<CpuMemory, PlacementError> {
    let meminfo = read("/proc/meminfo").ok_or_else(|| PlacementError::MemoryInfo {
        path: "/proc/meminfo".into(),
        reason: "cannot read it".into(),
    })?;
    let host = parse_meminfo(&meminfo).ok_or_else(|| PlacementError::MemoryInfo {
        path: "/proc/meminfo".into(),
        reason: "no MemTotal / MemAvailable lines".into(),
    })?;
    let mut out = CpuMemory {
        total: host.total,
        available: host.available,
        limit: None,
    };
    let membership = read("/proc/self/cgroup")
        .map(|t| parse_proc_cgroup(&t))
        .unwrap_or_default();
    let hierarchies = [
        (
            membership.v2.as_deref(),
            "/sys/fs/cgroup",
            "memory.max",
            "memory.current",
            "inactive_file",
            "v2",
        ),
        (
            membership.v1_memory.as_deref(),
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
            "v1",
        ),
    ];
    for (path, root, limit_file, usage_file, inactive_key, version) in hierarchies {
        let Some(path) = path else { continue };
        // The leaf and its ancestors, leaf first; inside a cgroup namespace the leaf is
        // "/" and the mount root is the container's own cgroup.
        let mut dir = Path::new(path.trim_start_matches('/'));
        loop {
            let base = Path::new(root).join(dir);
            let file = |name: &str| base.join(name).to_string_lossy().into_owned();
            if let Some(limit) = read(&file(limit_file)).as_deref().and_then(parse_cgroup_limit) {
                let usage = read(&file(usage_file))
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                let reclaimable = read(&file("memory.stat"))
                    .and_then(|t| parse_memory_stat(&t, inactive_key))
                    .unwrap_or(0);
                let used = usage.saturating_sub(reclaimable);
                let available = limit.saturating_sub(used);
                if limit < out.total || available < out.available {
                    out.total = out.total.min(limit);
                    out.available = out.available.min(available);
                    out.limit = Some(format!(
                        "cgroup {version} limit {} at {} ({} in use)",
                        crate::format_size(limit),
                        file(limit_file),
                        crate::format_size(used)
                    ));
                }
            }
            match dir.parent() {
                Some(p) => dir = p,
                None => break,
            }
        }
    }
    Ok(out)
}

/// [`cpu_memory_with`] on the real file system.
pub fn cpu_memory() -> Result<CpuMemory, PlacementError> {
    cpu_memory_with(&|p| std::fs::read_to_string(p).ok())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const MEMINFO: &str =
        "MemTotal:       24683656 kB\nMemFree:         1000000 kB\nMemAvailable:   24092396 kB\nBuffers: 1 kB\n";

    fn fs(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |p| m.get(p).cloned()
    }

    #[test]
    fn meminfo() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total, 24683656 * 1024);
        assert_eq!(m.available, 24092396 * 1024);
        let old = parse_meminfo("MemTotal: 100 kB\nMemFree: 40 kB\n").unwrap();
        assert_eq!(old.available, 40 * 1024);
        assert_eq!(parse_meminfo("nonsense"), None);
    }

    #[test]
    fn proc_cgroup() {
        let v1 = "9:name=systemd:/\n4:memory:/docker/abc\n1:cpu,cpuacct:/\n0::/\n";
        let m = parse_proc_cgroup(v1);
        assert_eq!(m.v1_memory.as_deref(), Some("/docker/abc"));
        assert_eq!(m.v2.as_deref(), Some("/"));
        let v2 = "0::/system.slice/docker-abc.scope\n";
        assert_eq!(
            parse_proc_cgroup(v2).v2.as_deref(),
            Some("/system.slice/docker-abc.scope")
        );
        assert_eq!(parse_proc_cgroup(v2).v1_memory, None);
    }

    #[test]
    fn limits_and_stats() {
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_limit("8589934592\n"), Some(8 << 30));
        assert_eq!(parse_cgroup_limit("garbage"), None);
        let stat = "cache 10\ninactive_file 4096\ntotal_inactive_file 8192\n";
        assert_eq!(parse_memory_stat(stat, "inactive_file"), Some(4096));
        assert_eq!(parse_memory_stat(stat, "total_inactive_file"), Some(8192));
        assert_eq!(parse_memory_stat(stat, "missing"), None);
    }

    #[test]
    fn cgroup_v2_limit_caps_host_memory() {
        let read = fs(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", "0::/kubepods/pod1/c1\n"),
            ("/sys/fs/cgroup/kubepods/pod1/c1/memory.max", "max\n"),
            ("/sys/fs/cgroup/kubepods/pod1/memory.max", "4294967296\n"),
            ("/sys/fs/cgroup/kubepods/pod1/memory.current", "1073741824\n"),
            (
                "/sys/fs/cgroup/kubepods/pod1/memory.stat",
                "anon 1\ninactive_file 536870912\n",
            ),
        ]);
        let m = cpu_memory_with(&read).unwrap();
        assert_eq!(m.total, 4 << 30);
        assert_eq!(m.available, (4 << 30) - (512 << 20));
        assert!(m.limit.unwrap().contains("cgroup v2 limit 4.0 GiB"));
    }

    #[test]
    fn cgroup_v2_namespace_root() {
        let read = fs(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", "0::/\n"),
            ("/sys/fs/cgroup/memory.max", "2147483648\n"),
            ("/sys/fs/cgroup/memory.current", "0\n"),
        ]);
        let m = cpu_memory_with(&read).unwrap();
        assert_eq!((m.total, m.available), (2 << 30, 2 << 30));
    }

    #[test]
    fn cgroup_v1_limit_and_unlimited() {
        let read = fs(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", "4:memory:/docker/abc\n0::/\n"),
            ("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "1073741824\n"),
            ("/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes", "805306368\n"),
            (
                "/sys/fs/cgroup/memory/docker/abc/memory.stat",
                "total_inactive_file 268435456\n",
            ),
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n"),
        ]);
        let m = cpu_memory_with(&read).unwrap();
        assert_eq!(m.total, 1 << 30);
        assert_eq!(m.available, 512 << 20);
        assert!(m.limit.unwrap().contains("cgroup v1"));

        let unlimited = fs(&[
            ("/proc/meminfo", MEMINFO),
            ("/proc/self/cgroup", "4:memory:/x\n"),
            ("/sys/fs/cgroup/memory/x/memory.limit_in_bytes", "9223372036854771712\n"),
        ]);
        let m = cpu_memory_with(&unlimited).unwrap();
        assert_eq!(m.total, 24683656 * 1024);
        assert_eq!(m.limit, None);
    }

    #[test]
    fn missing_meminfo_is_an_error() {
        let e = cpu_memory_with(&fs(&[])).unwrap_err();
        assert!(matches!(e, PlacementError::MemoryInfo { .. }), "{e}");
        let e = cpu_memory_with(&fs(&[("/proc/meminfo", "hello")])).unwrap_err();
        assert!(e.to_string().contains("MemTotal"), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine() {
        let m = cpu_memory().unwrap();
        assert!(m.total > 0 && m.available <= m.total, "{m:?}");
    }
}
