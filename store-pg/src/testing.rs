//! A real PostgreSQL server in a temporary directory, on a Unix socket only, for tests (the
//! `testing` feature). Uses the machine's PostgreSQL binaries (`make test` installs Debian's
//! `postgresql`); as root, the server runs as the `postgres` user, since PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A PostgreSQL server of its own; stopped and removed when dropped.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, or `pg_config --bindir`.
fn bindir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let out = Command::new("pg_config").arg("--bindir").output().expect(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no pg_config): run `make test`",
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn id(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no user {user}"))
}

impl TempPostgres {
    /// Initialises and starts a server.
    ///
    /// # Panics
    /// When PostgreSQL is missing or does not start (the message says why).
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("wajah-pg").tempdir().expect("temp dir");
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            std::os::unix::fs::chown(dir.path(), Some(id("-u", user)), Some(id("-g", user))).expect("chown");
        }
        // A port number of our own (it names the socket file and the shared-memory key).
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (std::process::id() % 2_000) as u16 * 10 + n % 10;
        let pg = Self { dir, bin: bindir(), port, run_as };
        pg.run("initdb", &["-D", &pg.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        pg.start_server();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The directory holding the socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store URL (key-value form) for this server.
    pub fn url(&self) -> String {
        format!("host={} port={} user=postgres dbname=postgres", self.dir.path().display(), self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).stdin(Stdio::null()).output().expect(program);
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!("-k {} -p {} -c listen_addresses=''", self.dir.path().display(), self.port);
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "-t", "60", "start"]);
    }

    /// Stops the server cleanly.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Kills the server with SIGKILL: the postmaster and every backend at once, as a power cut
    /// or the OOM killer would; waits until they are gone.
    pub fn kill(&self) {
        let pid =
            std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).expect("postmaster.pid");
        let pid = pid.lines().next().unwrap_or_default().trim().to_string();
        let mut all = children(&pid);
        all.push(pid);
        // A backend may exit between the listing and the kill: only the outcome is checked.
        let _ = Command::new("kill").arg("-KILL").args(&all).stderr(Stdio::null()).status();
        let gone = || all.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists());
        for _ in 0..200 {
            if gone() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(gone(), "PostgreSQL processes {all:?} survived SIGKILL");
        let _ = std::fs::remove_file(self.dir.path().join(format!(".s.PGSQL.{}", self.port)));
    }
}

/// The processes whose parent is `pid` (from /proc).
fn children(pid: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: the fields after the last ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_string();
            (ppid == pid).then(|| e.file_name().to_string_lossy().to_string())
        })
        .collect()
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
