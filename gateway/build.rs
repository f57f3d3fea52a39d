//! The adapter templates are embedded by `include_dir!`, which stable Rust cannot track:
//! rebuild when they change.
fn main() {
    println!("cargo::rerun-if-changed=../adapters-sdk/templates");
}
