//! Compiles the Yunhu protobuf schemas with prost-build, parsing them with protox (no system `protoc`), and lays
//! out the release binary's code (see [`order_text`]).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/yunhu/common.proto", "proto/yunhu/msg.proto", "proto/yunhu/user.proto", "proto/yunhu/ws.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    order_text();
    build_identity();
    Ok(())
}

/// The commit the build is made from (`--version`, `chatbridge_build_info`), and its profile: "unknown" outside a
/// git checkout (a source archive).
fn build_identity() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CHATBRIDGE_COMMIT={commit}");
    println!("cargo:rustc-env=CHATBRIDGE_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
    // Built again when HEAD moves (a path that is not there would make every build run this script again).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = std::path::Path::new(&dir);
        let head = dir.join("HEAD");
        if head.exists() {
            println!("cargo:rerun-if-changed={}", head.display());
        }
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]).map(|r| dir.join(r)).filter(|r| r.exists()) {
            println!("cargo:rerun-if-changed={}", reference.display());
        }
    }
}

/// The functions the daemon runs, placed together at the start of the release binary's code.
///
/// The kernel maps a program's code in runs of 64 KiB around every page it touches (fault-around), so what is
/// resident follows how widely the code that runs is spread, not how much of it there is: spread by the linker's
/// default order, the 2 MB a daemon runs kept ~8 MB of code resident. `link/text-order.txt` lists the functions that
/// ran (under callgrind: the daemon serving the API, the daemon against every platform's simulator, the null relay,
/// `chatbridge demo`; natively under perf: what callgrind never runs), written by `benches/text-order.sh`, for LLD's
/// `--symbol-ordering-file`. Names it lists that a build does not have (another compiler, other dependency
/// versions, renamed functions) are passed over: the layout goes back towards the default, the binary is the same
/// otherwise. Where the build machine's glibc can load them (2.36), relative relocations are packed too: the table
/// the loader reads whole at every start goes from 850 KB to a few.
///
/// Only where rustc links with its own LLD, as it does by default on x86_64 Linux since 1.90: another linker may
/// not know the options, so with a linker of one's own (`RUSTC_LINKER`, or one named in the flags) nothing is added.
fn order_text() {
    const ORDER: &str = "link/text-order.txt";
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let own_linker = std::env::var_os("RUSTC_LINKER").is_some()
        || ["linker", "fuse-ld"].iter().any(|flag| var("CARGO_ENCODED_RUSTFLAGS").contains(flag));
    if var("PROFILE") != "release" || var("TARGET") != "x86_64-unknown-linux-gnu" || own_linker || !lld_by_default() {
        return;
    }
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join(ORDER);
    if order.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if var("HOST") == var("TARGET") && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the build machine's glibc is `major.minor` or later (`getconf GNU_LIBC_VERSION`: "glibc 2.36").
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(output) = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output() else { return false };
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else { return false };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// Whether the compiler is 1.90 or later (x86_64 Linux links with the bundled LLD from then on).
fn lld_by_default() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(output) = std::process::Command::new(rustc).arg("-vV").output() else { return false };
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(release) = text.lines().find_map(|line| line.strip_prefix("release: ")) else { return false };
    let mut parts = release.split(['.', '-']).map(|part| part.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
