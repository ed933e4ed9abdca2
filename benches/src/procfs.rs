//! The server's CPU time and memory, read from `/proc`.

use std::io;

/// Ticks per second of the times in `/proc/PID/stat` (`USER_HZ`). The kernel exports
/// them in USER_HZ, which is 100 on every architecture Linux still supports for us
/// (x86, arm64, riscv, ...), whatever CONFIG_HZ is.
pub(crate) const CLOCK_TICKS_PER_SEC: u64 = 100;

/// CPU time a process has used, user and system, in clock ticks (whole process: all
/// threads, living or exited; not its children).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTicks {
    pub utime: u64,
    pub stime: u64,
}

impl CpuTicks {
    /// utime + stime, in seconds.
    pub(crate) fn seconds(&self) -> f64 {
        (self.utime + self.stime) as f64 / CLOCK_TICKS_PER_SEC as f64
    }

    /// CPU seconds used between `self` (earlier) and `later`.
    pub(crate) fn seconds_until(&self, later: &CpuTicks) -> f64 {
        (later.seconds() - self.seconds()).max(0.0)
    }
}

/// Parses the contents of `/proc/PID/stat`.
///
/// The second field, the command name, is in parentheses and may itself contain spaces
/// and parentheses, so fields are counted from the *last* `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<CpuTicks> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the name, numbered as in proc(5): 3 = state, ..., 14 = utime, 15 = stime.
    let mut fields = after.split_ascii_whitespace();
    let utime = fields.nth(14 - 3)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some(CpuTicks { utime, stime })
}

/// Parses the `VmRSS:` line of `/proc/PID/status`, in KiB.
pub(crate) fn parse_vmrss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_ascii_whitespace();
    let kib = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(kib),
        Some(_) => None,
    }
}

/// Machine-wide CPU time from the `cpu` line of `/proc/stat`, in clock ticks, all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MachineTicks {
    /// user + nice + system + irq + softirq: time some CPU was working.
    pub busy: u64,
    /// Time the hypervisor ran something else while we wanted a CPU.
    pub steal: u64,
}

/// Parses the aggregate `cpu ` line of `/proc/stat`.
pub(crate) fn parse_proc_stat(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    if v.len() < 8 {
        return None;
    }
    Some(MachineTicks {
        busy: v[0] + v[1] + v[2] + v[5] + v[6],
        steal: v[7],
    })
}

/// Machine-wide CPU time so far.
pub(crate) fn read_machine() -> io::Result<MachineTicks> {
    let s = std::fs::read_to_string("/proc/stat")?;
    parse_proc_stat(&s).ok_or_else(|| bad_data("/proc/stat", "-"))
}

/// Clock ticks to seconds.
pub(crate) fn ticks_to_s(ticks: u64) -> f64 {
    ticks as f64 / CLOCK_TICKS_PER_SEC as f64
}

fn bad_data(what: &str, pid: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("cannot parse {what} of process {pid}"),
    )
}

/// CPU time of process `pid` (`"self"` for this one).
pub(crate) fn read_cpu(pid: &str) -> io::Result<CpuTicks> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&s).ok_or_else(|| bad_data("/proc/PID/stat", pid))
}

/// Resident set size of process `pid`, in KiB.
pub(crate) fn read_rss_kib(pid: &str) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vmrss_kib(&s).ok_or_else(|| bad_data("VmRSS", pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line of /proc/PID/stat (kernel 6.x), with utime 1234 and stime 567.
    const STAT: &str = "4242 (ringmaster) S 1 4242 4242 34816 4242 4194560 1184 0 0 0 \
        1234 567 0 0 20 0 2 0 123456 12345678 1024 18446744073709551615 1 1 0 0 0 0 0 \
        4096 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_fields() {
        let t = parse_stat(STAT).unwrap();
        assert_eq!(
            t,
            CpuTicks {
                utime: 1234,
                stime: 567
            }
        );
        assert!((t.seconds() - 18.01).abs() < 1e-9);
    }

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let odd = STAT.replace("(ringmaster)", "(a) b (c) ) S 9 9)");
        assert_eq!(
            parse_stat(&odd),
            Some(CpuTicks {
                utime: 1234,
                stime: 567
            })
        );
    }

    #[test]
    fn truncated_or_garbled_stat_is_none() {
        assert_eq!(parse_stat("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_stat("no parens at all"), None);
        assert_eq!(parse_stat(&STAT.replace(" 1234 ", " x ")), None);
    }

    #[test]
    fn cpu_difference() {
        let a = CpuTicks {
            utime: 100,
            stime: 50,
        };
        let b = CpuTicks {
            utime: 900,
            stime: 250,
        };
        assert!((a.seconds_until(&b) - 10.0).abs() < 1e-9);
        assert_eq!(b.seconds_until(&a), 0.0);
    }

    #[test]
    fn vmrss() {
        let status = "Name:\tringmaster\nVmPeak:\t  20000 kB\nVmRSS:\t    4312 kB\nThreads:\t2\n";
        assert_eq!(parse_vmrss_kib(status), Some(4312));
        assert_eq!(parse_vmrss_kib("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vmrss_kib("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn machine_line() {
        let stat = "cpu  100 5 50 9000 7 3 2 11 0 0\ncpu0 50 2 25 4500 3 1 1 5 0 0\nintr 1 2\n";
        assert_eq!(
            parse_proc_stat(stat),
            Some(MachineTicks {
                busy: 160,
                steal: 11
            })
        );
        assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        assert!(read_machine().is_ok());
    }

    #[test]
    fn reads_own_process() {
        let t = read_cpu("self").unwrap();
        assert!(t.seconds() >= 0.0);
        assert!(read_rss_kib("self").unwrap() > 0);
    }
}
