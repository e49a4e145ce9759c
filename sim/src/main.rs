//! `detcd-sim`: see the crate docs and `sim/README.md`.

#[cfg(madsim)]
fn main() {
    std::process::exit(detcd_sim::cli::main());
}

/// Outside the simulator build there is nothing to run: say how to get it.
#[cfg(not(madsim))]
fn main() {
    eprintln!(
        "detcd-sim only runs in the simulator build (--cfg madsim). Use:\n  \
         scripts/sim run --seeds 200\nor\n  \
         CARGO_TARGET_DIR=target/sim RUSTFLAGS=\"--cfg madsim\" cargo run -p detcd-sim --release -- run --seeds 200"
    );
    std::process::exit(2);
}
