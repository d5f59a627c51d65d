// SPDX-License-Identifier: MIT
// build.rs: finds libfuguelog — a CMake build tree ($FUGUELOG_BUILD_DIR) or an installed copy (pkg-config).
//
// FUGUELOG_BUILD_DIR=<build>/producer links that tree's libfuguelog.a, so nothing has to be
// installed and no run-time search path is needed; its private dependencies come from the
// fuguelog.pc next to it (the same file `cmake --install` ships), so they never drift from the
// CMake build. Without it, `pkg-config fuguelog` is asked; FUGUELOG_STATIC=1 then links the
// installed static library instead of the shared one.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FUGUELOG_BUILD_DIR");
    println!("cargo:rerun-if-env-changed=FUGUELOG_STATIC");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    match env::var_os("FUGUELOG_BUILD_DIR") {
        Some(dir) if !dir.is_empty() => link_build_tree(&PathBuf::from(dir)),
        _ => link_pkg_config(),
    }
}

fn link_build_tree(dir: &Path) {
    let lib = dir.join("libfuguelog.a");
    let pc = dir.join("fuguelog.pc");
    if !lib.is_file() || !pc.is_file() {
        fail(&format!(
            "FUGUELOG_BUILD_DIR={} has no libfuguelog.a and fuguelog.pc; point it at <cmake build dir>/producer \
             after `cmake --build <build dir>`",
            dir.display()
        ));
    }
    // relink when the C library is rebuilt
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rerun-if-changed={}", pc.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=fuguelog");
    let text =
        std::fs::read_to_string(&pc).unwrap_or_else(|e| fail(&format!("{}: {}", pc.display(), e)));
    for line in text.lines() {
        if let Some(libs) = line.strip_prefix("Libs.private:") {
            for name in libs.split_whitespace().filter_map(|f| f.strip_prefix("-l")) {
                println!("cargo:rustc-link-lib=dylib={}", name);
            }
        }
    }
    println!("cargo:include={}", dir.parent().unwrap_or(dir).display());
}

fn link_pkg_config() {
    let statik = env::var_os("FUGUELOG_STATIC").map_or(false, |v| !v.is_empty() && v != "0");
    let mut args = vec!["--libs"];
    if statik {
        args.push("--static");
    }
    args.push("fuguelog");
    let out = Command::new("pkg-config").args(&args).output().unwrap_or_else(|e| {
        fail(&format!(
            "cannot run pkg-config ({}); install pkg-config, or set FUGUELOG_BUILD_DIR=<cmake build dir>/producer",
            e
        ))
    });
    if !out.status.success() {
        fail(&format!(
            "pkg-config finds no fuguelog ({}); install libfuguelog (`cmake --install <build dir>`) and set \
             PKG_CONFIG_PATH to its pkgconfig directory, or set FUGUELOG_BUILD_DIR=<cmake build dir>/producer",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    for flag in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", dir);
        } else if flag == "-lfuguelog" && statik {
            println!("cargo:rustc-link-lib=static=fuguelog");
        } else if let Some(name) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={}", name);
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("fuguelog-sys: {}", msg);
    std::process::exit(1);
}
