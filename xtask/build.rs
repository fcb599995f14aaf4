// Lets xtask name the host's target triple (the device `host` builds for it).
fn main() {
    println!("cargo:rustc-env=HOST_TRIPLE={}", std::env::var("TARGET").expect("cargo sets TARGET"));
}
