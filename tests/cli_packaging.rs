//! What an installed `taskflow` gives a shell: its version with the commit it was built from,
//! completion scripts and manual pages, all generated from the command line's own definitions.

use std::path::Path;
use std::process::Command;

use assert_cmd::Command as Cmd;

fn taskflow() -> Cmd {
    Cmd::new(env!("CARGO_BIN_EXE_taskflow"))
}

fn stdout_of(args: &[&str]) -> String {
    let output = taskflow().args(args).assert().success();
    String::from_utf8(output.get_output().stdout.clone()).expect("stdout is UTF-8")
}

fn stderr_of(command: &mut Cmd, code: i32) -> String {
    let output = command.assert().code(code);
    String::from_utf8(output.get_output().stderr.clone()).expect("stderr is UTF-8")
}

/// How `taskflow ARGS` ends writing to an output whose reader has gone, and what it said on
/// stderr.
fn unread(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output =
        Command::new(env!("CARGO_BIN_EXE_taskflow")).args(args).stdout(writer).output().unwrap();
    (output.status, String::from_utf8(output.stderr).unwrap())
}

/// `taskflow completions zsh | head -1`: the reader stops early, the command ends quietly, as
/// every command does.
#[test]
fn a_script_or_page_nobody_reads_ends_quietly() {
    for args in [&["completions", "zsh"][..], &["completions", "bash"], &["man"]] {
        let (status, stderr) = unread(args);
        assert!(status.success(), "{args:?}: {status} {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// The subcommands `taskflow ARGS --help` lists (without `help`).
fn subcommands(args: &[&str]) -> Vec<String> {
    let mut help_args = args.to_vec();
    help_args.push("--help");
    let help = stdout_of(&help_args);
    let Some((_, commands)) = help.split_once("Commands:\n") else { return Vec::new() };
    commands
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("    "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command path of the binary, `taskflow` itself first: `["flows", "inspect"]` and so on.
fn command_paths() -> Vec<Vec<String>> {
    let mut paths = vec![Vec::new()];
    let mut at = 0;
    while at < paths.len() {
        let path: Vec<String> = paths[at].clone();
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for sub in subcommands(&args) {
            let mut child = path.clone();
            child.push(sub);
            paths.push(child);
        }
        at += 1;
    }
    paths
}

/// What bash completes for the words of `line` (the last one being completed), through the
/// script `taskflow completions bash` prints.
fn bash_completes(script: &Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let program = format!(
        "source {script}\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE='{line}'\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         complete -p taskflow >/dev/null || exit 3\n\
         _taskflow taskflow '{current}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = words.join(" "),
        cword = words.len() - 1,
        current = words[words.len() - 1],
        previous = words[words.len() - 2],
    );
    let output = Command::new("bash").arg("-c").arg(program).output().expect("bash runs");
    assert!(output.status.success(), "the script does not load in bash: {output:?}");
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let version = stdout_of(&["--version"]);
    let expected = format!("taskflow {}", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    let in_checkout = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|output| output.status.success());
    if in_checkout {
        let commit = version[expected.len()..].trim();
        assert!(
            commit.starts_with('(') && commit.ends_with(')') && commit.len() > 9,
            "a build from a checkout shows `(COMMIT DATE)`: {version}"
        );
    }
}

#[test]
fn bash_completes_commands_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("taskflow.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();
    let check = |line: &str, expected: &[&str]| {
        let got = bash_completes(&script, line);
        assert_eq!(got, expected, "completing `{line}`");
    };
    check("taskflow flows ins", &["inspect"]);
    check("taskflow fl", &["flows"]);
    check("taskflow se", &["serve"]);
    check("taskflow serve --kee", &["--keep-events-days"]);
    check("taskflow completions z", &["zsh"]);
}

#[test]
fn every_shell_gets_a_script_that_knows_every_command() {
    let commands = subcommands(&[]);
    assert!(commands.len() >= 9, "{commands:?}");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        for command in &commands {
            assert!(script.contains(command.as_str()), "{shell}'s script lacks `{command}`");
        }
    }
    let refused = stderr_of(taskflow().args(["completions", "tcsh"]), 2);
    assert!(refused.contains("invalid value 'tcsh'"), "{refused}");
}

#[test]
fn every_command_has_a_manual_page() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let said = stdout_of(&["man", "--dir", pages.to_str().unwrap(), "--json"]);
    let said: serde_json::Value = serde_json::from_str(&said).unwrap();
    let paths = command_paths();
    assert!(paths.len() >= 15, "{paths:?}");
    for path in &paths {
        let name = std::iter::once("taskflow".to_owned()).chain(path.clone()).collect::<Vec<_>>();
        let file = pages.join(format!("{}.1", name.join("-")));
        let page = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("no page for `{}`: {error}", name.join(" ")));
        assert!(page.contains(".TH"), "{} is not a man page", file.display());
        assert!(page.contains(&format!("{} \\-", name.join("\\-"))), "{}: NAME", file.display());
        assert!(
            said["pages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|listed| { listed.as_str() == file.file_name().unwrap().to_str() })
        );
    }
    // groff (with the input encoding recognized, as man does) renders each without a warning.
    if Command::new("groff").arg("--version").output().is_ok() {
        for entry in std::fs::read_dir(&pages).unwrap() {
            let file = entry.unwrap().path();
            let output = Command::new("groff")
                .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                output.stderr.is_empty(),
                "{}: {}",
                file.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let main_page = stdout_of(&["man"]);
    assert!(main_page.contains(".TH taskflow 1"), "{main_page}");
}

#[test]
fn a_folder_that_cannot_be_written_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let refused = stderr_of(taskflow().args(["man", "--dir"]).arg(file.join("man1")), 1);
    assert!(refused.starts_with("error: cannot write the pages into"), "{refused}");
    assert!(refused.contains("\nhint: "), "{refused}");
}
