//! What `/proc` says about a process and the machine: CPU time (`stat` fields 14–15,
//! `utime` and `stime`, proc(5)), resident memory (`status` `VmRSS`) and the load
//! average. Readings that fail are `None`: the report shows a dash, the run goes on.

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`, 100 on every Linux the
/// project runs on; proc(5) says to ask `sysconf(_SC_CLK_TCK)`, which needs `unsafe`).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) `pid` has used; `None` for this process.
pub(crate) fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces: fields count from after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    // After ')': field 3 is first, so utime (14) is the 12th and stime (15) the 13th.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Resident set of `pid`, MiB.
pub(crate) fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The 1-minute load average.
pub(crate) fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let before = cpu_secs(None).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_secs(None).unwrap() >= before);
        assert!(rss_mib(std::process::id()).unwrap() > 0.0);
        assert!(loadavg_1m().is_some());
    }
}
