//! `wajah reverify`: offline batch re-verification, parallel, resumable, one JSON line per row.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use wajah::{Engine, Gallery};

/// One input row: an id (the NIK for store lookups), a selfie, and optionally the ID photo.
#[derive(Clone, Debug, Deserialize)]
pub struct Row {
    pub id: String,
    pub selfie: PathBuf,
    #[serde(default)]
    pub ktp: Option<PathBuf>,
}

/// Reads CSV (`id,selfie[,ktp]` with a header) or JSONL (`{"id", "selfie", "ktp"?}`). A bad line is
/// returned as an error row rather than stopping the batch.
pub fn read_rows(path: &Path) -> Result<Vec<Result<Row, (usize, String)>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &str| -> PathBuf { if Path::new(p).is_absolute() { p.into() } else { base.join(p) } };
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(usize::from(!jsonl)) {
        if line.trim().is_empty() {
            continue;
        }
        let row = if jsonl {
            serde_json::from_str::<Row>(line).map_err(|e| (n + 1, format!("bad JSON: {e}"))).map(|r| Row {
                selfie: resolve(&r.selfie.to_string_lossy()),
                ktp: r.ktp.map(|k| resolve(&k.to_string_lossy())),
                ..r
            })
        } else {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            match cols[..] {
                [id, selfie] if !id.is_empty() => {
                    Ok(Row { id: id.into(), selfie: resolve(selfie), ktp: None })
                }
                [id, selfie, ktp] if !id.is_empty() => Ok(Row {
                    id: id.into(),
                    selfie: resolve(selfie),
                    ktp: (!ktp.is_empty()).then(|| resolve(ktp)),
                }),
                _ => Err((n + 1, "expected id,selfie[,ktp]".into())),
            }
        };
        rows.push(row);
    }
    Ok(rows)
}

/// Ids already in the output; a torn last line (from a kill mid-write) is cut off.
fn done_ids(output: &Path) -> Result<HashSet<String>> {
    let mut done = HashSet::new();
    let Ok(file) = std::fs::File::open(output) else { return Ok(done) };
    let mut good_len = 0u64;
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        match serde_json::from_slice::<Value>(&line) {
            Ok(v) => {
                if let Some(id) = v["id"].as_str() {
                    done.insert(id.to_string());
                }
                good_len += line.len() as u64 + 1;
            }
            Err(_) => break,
        }
    }
    let actual = std::fs::metadata(output)?.len();
    if actual > good_len {
        OpenOptions::new().write(true).open(output)?.set_len(good_len)?;
    }
    Ok(done)
}

fn verify(engine: &Engine, gallery: Option<&Gallery>, row: &Row) -> Value {
    let result = (|| -> Result<(wajah::Decision, Vec<&'static str>), wajah::Error> {
        let selfie = std::fs::read(&row.selfie)?;
        let reference = match (&row.ktp, gallery) {
            (Some(ktp), _) => engine.analyze(&std::fs::read(ktp)?)?.template,
            (None, Some(gallery)) => gallery.template(&row.id)?,
            (None, None) => {
                return Err(wajah::Error::InvalidArgument("no KTP photo and no store given".into()));
            }
        };
        let (decision, analysis) = engine.verify(&selfie, &reference)?;
        Ok((decision, analysis.quality.issues.iter().map(|i| i.as_str()).collect()))
    })();
    match result {
        Ok((d, problems)) => json!({
            "id": row.id, "status": "ok", "matched": d.matched, "decision": d.verdict(),
            "score": d.score, "threshold": d.threshold, "capture_problems": problems,
        }),
        Err(e) => json!({ "id": row.id, "status": "error", "code": e.code(), "reason": e.to_string() }),
    }
}

/// Processes every row not yet in `output`, appending one line per row. Returns the summary.
pub fn run(engine: &Engine, input: &Path, output: &Path, gallery: Option<&Gallery>) -> Result<Value> {
    let rows = read_rows(input)?;
    let done = done_ids(output)?;
    let file = OpenOptions::new().create(true).append(true).open(output)?;
    let out = Mutex::new(file);
    let write = |line: Value| -> Result<()> {
        let mut text = line.to_string();
        text.push('\n');
        let mut f = out.lock().map_err(|_| anyhow::anyhow!("output lock poisoned"))?;
        f.write_all(text.as_bytes())?; // one write per row: a kill leaves at most one torn line
        Ok(())
    };
    let mut bad_rows = 0;
    let mut todo = Vec::new();
    for row in rows {
        match row {
            Ok(r) if !done.contains(&r.id) => todo.push(r),
            Ok(_) => {}
            Err((line, reason)) => {
                bad_rows += 1;
                let id = format!("line:{line}");
                if !done.contains(&id) {
                    write(json!({ "id": id, "status": "error", "code": "bad_row", "reason": reason }))?;
                }
            }
        }
    }
    let bar = ProgressBar::new(todo.len() as u64);
    todo.par_iter().try_for_each(|row| {
        write(verify(engine, gallery, row))?;
        bar.inc(1);
        Ok::<_, anyhow::Error>(())
    })?;
    bar.finish_and_clear();
    out.lock().map_err(|_| anyhow::anyhow!("output lock poisoned"))?.sync_all()?;

    let (mut matched, mut no_match, mut errors) = (0, 0, 0);
    for line in std::fs::read_to_string(output)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        match (v["status"].as_str(), v["matched"].as_bool()) {
            (Some("ok"), Some(true)) => matched += 1,
            (Some("ok"), _) => no_match += 1,
            _ => errors += 1,
        }
    }
    Ok(json!({
        "rows_done_before": done.len(), "rows_processed_now": todo.len(), "bad_rows": bad_rows,
        "match": matched, "no_match": no_match, "errors": errors, "output": output,
    }))
}
