use super::*;

const CODEX_CONFIG: &str = r#"# my Codex settings
model = "gpt-5.5"   # keep this comment

[otel]
environment = "laptop"
log_user_prompt = true

[projects."/src/app"]
trust_level = "trusted"
"#;

const CODEX_HOOKS: &str = r#"{
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/local/bin/audit", "timeout": 9}]}
        ]
    }
}
"#;

const CLAUDE_SETTINGS: &str = r#"{
  "permissions": {"allow": ["Bash(ls)"]},
  "env": {"FOO": "bar", "OTEL_METRICS_EXPORTER": "console"},
  "hooks": {
    "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]
  }
}
"#;

struct Homes {
    _dir: tempfile::TempDir,
    options: SetupOptions,
}

fn homes(with_files: bool) -> Homes {
    let dir = tempfile::tempdir().unwrap();
    let (root, codex, claude) = (
        dir.path().join("root"),
        dir.path().join("codex"),
        dir.path().join("claude"),
    );
    fs::create_dir_all(&codex).unwrap();
    fs::create_dir_all(&claude).unwrap();
    if with_files {
        fs::write(codex.join("config.toml"), CODEX_CONFIG).unwrap();
        fs::write(codex.join("hooks.json"), CODEX_HOOKS).unwrap();
        fs::write(claude.join("settings.json"), CLAUDE_SETTINGS).unwrap();
    }
    Homes {
        options: SetupOptions {
            targets: vec![Target::Codex, Target::Claude],
            dry_run: false,
            undo: false,
            root,
            codex_home: codex,
            claude_dir: claude,
            hook_command: "/opt/agentcol/bin/agentcol hook".into(),
            otlp_http: "http://127.0.0.1:4318".into(),
            hook_url: "http://127.0.0.1:4319".into(),
            codex_bin: None,
            claude_hooks: ClaudeHooks::Http,
        },
        _dir: dir,
    }
}

fn files(o: &SetupOptions) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    [
        o.codex_home.join("config.toml"),
        o.codex_home.join("hooks.json"),
        o.claude_dir.join("settings.json"),
    ]
    .into_iter()
    .map(|p| {
        let b = fs::read(&p).ok();
        (p, b)
    })
    .collect()
}

fn run_quiet(o: &SetupOptions) -> (Vec<FileReport>, String) {
    let mut out = Vec::new();
    let r = run(o, &mut out).unwrap();
    (r, String::from_utf8(out).unwrap())
}

fn text(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

#[test]
fn setup_installs_keeps_foreign_entries_is_idempotent_and_undoes_exactly() {
    for with_files in [true, false] {
        let h = homes(with_files);
        let before = files(&h.options);
        let (reports, _) = run_quiet(&h.options);
        assert!(
            reports.iter().all(|r| r.outcome == Outcome::Changed),
            "{reports:?}"
        );

        let config = text(&h.options.codex_home.join("config.toml"));
        assert!(config.contains(
            r#"exporter = { otlp-http = { endpoint = "http://127.0.0.1:4318/v1/logs", protocol = "binary" } }"#
        ), "{config}");
        assert!(config.contains("/v1/traces") && config.contains("/v1/metrics"));
        let hooks: serde_json::Value =
            serde_json::from_str(&text(&h.options.codex_home.join("hooks.json"))).unwrap();
        for event in codex::EVENTS {
            let groups = hooks["hooks"][event].as_array().unwrap();
            assert!(groups.iter().any(
                |g| g["hooks"][0]["command"] == "/opt/agentcol/bin/agentcol hook --agent codex"
            ));
        }
        let settings: serde_json::Value =
            serde_json::from_str(&text(&h.options.claude_dir.join("settings.json"))).unwrap();
        assert_eq!(
            settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "http://127.0.0.1:4318"
        );
        assert_eq!(settings["env"]["OTEL_METRICS_EXPORTER"], "otlp");
        assert_eq!(
            settings["hooks"]["PreToolUse"][0]["hooks"][0]["url"],
            "http://127.0.0.1:4319/hook/claude"
        );
        assert_eq!(
            settings["hooks"]["SessionStart"][0]["hooks"][0]["command"],
            "/opt/agentcol/bin/agentcol hook --agent claude"
        );
        assert!(settings["hooks"].get("WorktreeCreate").is_none());
        if with_files {
            // Foreign entries, comments and order survive.
            assert!(config
                .starts_with("# my Codex settings\nmodel = \"gpt-5.5\"   # keep this comment"));
            assert!(
                config.contains("environment = \"laptop\"")
                    && config.contains("[projects.\"/src/app\"]")
            );
            assert_eq!(
                hooks["hooks"]["PreToolUse"][0]["hooks"][0]["command"],
                "/usr/local/bin/audit"
            );
            assert_eq!(settings["env"]["FOO"], "bar");
            assert_eq!(settings["permissions"]["allow"][0], "Bash(ls)");
            assert_eq!(
                settings["hooks"]["Stop"][0]["hooks"][0]["command"],
                "notify-send done"
            );
            let s = text(&h.options.claude_dir.join("settings.json"));
            assert!(s.find("\"permissions\"").unwrap() < s.find("\"env\"").unwrap());
        }

        // Twice is once.
        let after_once = files(&h.options);
        let (reports, _) = run_quiet(&h.options);
        assert!(
            reports.iter().all(|r| r.outcome == Outcome::Unchanged),
            "{reports:?}"
        );
        assert_eq!(files(&h.options), after_once);

        // Undo puts the exact bytes back (or removes what setup created).
        let undo = SetupOptions {
            undo: true,
            ..h.options.clone()
        };
        run_quiet(&undo);
        assert_eq!(files(&h.options), before);
        let manifest: Manifest = serde_json::from_slice(
            &fs::read(h.options.root.join("backups/manifest.json")).unwrap(),
        )
        .unwrap();
        assert!(manifest.files.is_empty());
        // A second undo has nothing left to do.
        run_quiet(&undo);
        assert_eq!(files(&h.options), before);
    }
}

#[test]
fn dry_run_prints_the_diff_and_touches_nothing() {
    let h = homes(true);
    let before = files(&h.options);
    let dry = SetupOptions {
        dry_run: true,
        ..h.options.clone()
    };
    let (reports, out) = run_quiet(&dry);
    assert!(reports.iter().all(|r| r.outcome == Outcome::Changed));
    assert_eq!(files(&h.options), before);
    assert!(!h.options.root.join("backups").exists());
    assert!(out.contains("+exporter = { otlp-http"), "{out}");
    let added = |needle: &str| {
        out.lines()
            .any(|l| l.starts_with('+') && l.contains(needle))
    };
    assert!(
        added(r#""command": "/opt/agentcol/bin/agentcol hook --agent codex""#),
        "{out}"
    );
    assert!(added(r#""OTEL_METRICS_EXPORTER": "otlp""#), "{out}");
}

#[test]
fn undo_of_a_file_edited_since_setup_removes_only_our_entries() {
    let h = homes(true);
    run_quiet(&h.options);
    let settings = h.options.claude_dir.join("settings.json");
    let edited = text(&settings).replace("\"FOO\": \"bar\"", "\"FOO\": \"baz\"");
    fs::write(&settings, &edited).unwrap();
    let (reports, _) = run_quiet(&SetupOptions {
        undo: true,
        ..h.options.clone()
    });
    let r = reports.iter().find(|r| r.path == settings).unwrap();
    assert!(r
        .note
        .as_deref()
        .unwrap_or("")
        .contains("edited since setup"));
    let after: serde_json::Value = serde_json::from_str(&text(&settings)).unwrap();
    assert_eq!(after["env"]["FOO"], "baz", "the user's edit is kept");
    assert_eq!(
        after["env"]["OTEL_METRICS_EXPORTER"], "console",
        "the prior value is back"
    );
    assert!(after["env"].get("OTEL_EXPORTER_OTLP_ENDPOINT").is_none());
    assert_eq!(after["hooks"]["Stop"].as_array().unwrap().len(), 1);
    assert!(after["hooks"].get("PreToolUse").is_none());
}

#[test]
fn an_unreadable_settings_file_is_refused_and_left_alone() {
    let h = homes(true);
    let settings = h.options.claude_dir.join("settings.json");
    fs::write(&settings, "{ not json").unwrap();
    let o = SetupOptions {
        targets: vec![Target::Claude],
        ..h.options.clone()
    };
    let err = run(&o, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("is not valid JSON"), "{err}");
    assert_eq!(text(&settings), "{ not json");
    // A hooks.json that is JSON but not an object is refused too, never replaced.
    let hooks = h.options.codex_home.join("hooks.json");
    fs::write(&hooks, "[1, 2]").unwrap();
    let o = SetupOptions {
        targets: vec![Target::Codex],
        ..h.options.clone()
    };
    let err = run(&o, &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("top level is not an object"),
        "{err}"
    );
    assert_eq!(text(&hooks), "[1, 2]");
}

#[test]
fn a_new_hook_address_replaces_ours_instead_of_adding_a_second() {
    let h = homes(true);
    run_quiet(&h.options);
    let moved = SetupOptions {
        hook_url: "http://127.0.0.1:5555".into(),
        hook_command: "/opt/agentcol/bin/agentcol hook --url http://127.0.0.1:5555".into(),
        ..h.options.clone()
    };
    run_quiet(&moved);
    let settings: serde_json::Value =
        serde_json::from_str(&text(&h.options.claude_dir.join("settings.json"))).unwrap();
    let pre = settings["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre.len(), 1, "{pre:?}");
    assert_eq!(
        pre[0]["hooks"][0]["url"],
        "http://127.0.0.1:5555/hook/claude"
    );
    let hooks: serde_json::Value =
        serde_json::from_str(&text(&h.options.codex_home.join("hooks.json"))).unwrap();
    assert_eq!(hooks["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
    // Undo still restores the original bytes: the backup is of the file before the first run.
    run_quiet(&SetupOptions {
        undo: true,
        ..moved
    });
    assert_eq!(
        text(&h.options.claude_dir.join("settings.json")),
        CLAUDE_SETTINGS
    );
    assert_eq!(text(&h.options.codex_home.join("hooks.json")), CODEX_HOOKS);
}

#[test]
fn claude_hooks_can_all_go_through_the_shim_and_switch_back() {
    let h = homes(true);
    let command = SetupOptions {
        claude_hooks: ClaudeHooks::Command,
        ..h.options.clone()
    };
    run_quiet(&command);
    let settings: serde_json::Value =
        serde_json::from_str(&text(&h.options.claude_dir.join("settings.json"))).unwrap();
    let pre = &settings["hooks"]["PreToolUse"];
    assert_eq!(pre.as_array().unwrap().len(), 1);
    assert_eq!(pre[0]["hooks"][0]["type"], "command");
    assert_eq!(
        pre[0]["hooks"][0]["command"],
        "/opt/agentcol/bin/agentcol hook --agent claude"
    );
    // Back to http hooks: ours are replaced, not added to.
    run_quiet(&h.options);
    let settings: serde_json::Value =
        serde_json::from_str(&text(&h.options.claude_dir.join("settings.json"))).unwrap();
    let pre = settings["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre.len(), 1);
    assert_eq!(pre[0]["hooks"][0]["type"], "http");
    run_quiet(&SetupOptions {
        undo: true,
        ..h.options.clone()
    });
    assert_eq!(
        text(&h.options.claude_dir.join("settings.json")),
        CLAUDE_SETTINGS
    );
}
