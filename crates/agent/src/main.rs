//! `jobrun-agent`: the slim in-AWS jobrun (see the library's header). In an image it is
//! `/opt/jobrun/jobrun`, started as `jobrun agent` or `jobrun task -- COMMAND…`.

fn main() -> std::process::ExitCode {
    // Kept in the binary: `jobrun build` reads it to know this is a jobrun agent of this wire
    // format and version (`jobrun_wire::wire::MARK_AGENT`); unreferenced, the linker drops it.
    std::hint::black_box(jobrun_wire::wire::MARK_AGENT);
    jobrun_agent::main(std::env::args_os().skip(1).collect())
}
