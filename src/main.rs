//! `unas`: the command line. Everything — parsing, dispatch, the one place errors are printed — is in
//! the library's `cli` module.

fn main() -> std::process::ExitCode {
    unas::cli::main()
}
