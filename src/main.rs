fn main() -> std::process::ExitCode {
    fedgate::cli::main()
}
