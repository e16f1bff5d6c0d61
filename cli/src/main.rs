//! `wajah`: command-line face detection and comparison.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use std::sync::Arc;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect;
use serde_json::{Value, json};
use wajah::{
    AuditLog, Engine, EngineConfig, Face, FaceAnalysis, FacePolicy, FaceQuery, Gallery, IndexConfig,
    IndexKind, SqliteStore, TemplateKey, TemplateStore,
};

mod calibrate;
mod capture;
mod degrade;
mod eval;
mod liveness;
mod metrics;
mod plot;
mod replay;
mod reverify;
mod separation;
mod synth;
mod train;

#[derive(Parser)]
#[command(name = "wajah", version, about = "Face verification for digital-ID registration")]
struct Cli {
    /// With several faces in a photo, use the main one (largest, most central) instead of refusing;
    /// the same as `--face-policy largest`.
    #[arg(long, global = true)]
    largest: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare the faces of two photos.
    Compare { a: PathBuf, b: PathBuf },
    /// Find all faces in a photo.
    Detect {
        image: PathBuf,
        /// Write the photo with boxes and landmarks drawn to this PNG.
        #[arg(long)]
        draw: Option<PathBuf>,
    },
    /// Run a verification protocol: LFW pairs.txt or a CSV of pairs (image_a,image_b,same_person),
    /// labels 1/0, true/false or same/different.
    Eval {
        /// The pairs file.
        #[arg(long)]
        pairs: PathBuf,
        /// Folder the pairs' paths are relative to (LFW: the folder of person folders).
        #[arg(long)]
        root: PathBuf,
        /// JSON report.
        #[arg(long, default_value = "eval-report.json")]
        out: PathBuf,
        /// Folder for roc.png, det.png and scores.png.
        #[arg(long)]
        plots: Option<PathBuf>,
        /// CSV of every scored pair: paths, label, fold, score, and each photo's eye distance,
        /// quality score, sharpness and detector score (for score studies).
        #[arg(long, value_name = "CSV")]
        scores: Option<PathBuf>,
        /// Degrade each pair's A photo before analysis, like an ID-card photo: `scale=0.6,jpeg=40`
        /// (resize by 0.05..1, then JPEG at quality 1..100).
        #[arg(long, value_name = "SPEC")]
        degrade_a: Option<degrade::Degrade>,
        /// The same for each pair's B photo.
        #[arg(long, value_name = "SPEC")]
        degrade_b: Option<degrade::Degrade>,
        /// Mode for the A (ID) photos only, e.g. `accurate` enrolment against `fast` selfies.
        #[arg(long, value_enum)]
        accuracy_a: Option<wajah::Mode>,
    },
    /// Choose thresholds for target false-match rates (bootstrap 95% intervals); writes the first.
    Calibrate {
        #[arg(long)]
        pairs: PathBuf,
        #[arg(long)]
        root: PathBuf,
        /// Target false-match rates.
        #[arg(long = "fmr", default_values_t = [1e-3, 1e-4])]
        fmrs: Vec<f64>,
        /// Bootstrap rounds.
        #[arg(long, default_value_t = 1000)]
        rounds: usize,
        /// Calibration file to write (point EngineConfig.calibration / --calibration at it).
        #[arg(long, default_value = "models/calibration.toml")]
        out: PathBuf,
    },
    /// Re-verify a batch: CSV (id,selfie[,ktp]) or JSONL; resumable; JSONL decisions out.
    Reverify {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Template database for rows without a KTP photo (the server's <data_dir>/templates.db).
        #[arg(long)]
        store: Option<PathBuf>,
        /// The store's template key file.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Train the occlusion model (eyeglasses, sunglasses, mask, other occlusion) from a labels CSV
    /// (`path,eyeglasses,sunglasses,mask,face_occluded[,split]`) plus occlusions drawn on its clean faces.
    TrainOcclusion {
        #[arg(long)]
        labels: PathBuf,
        /// Folder the labels' paths are relative to.
        #[arg(long)]
        root: PathBuf,
        /// Use only rows of this split (rows without a split are always used).
        #[arg(long, default_value = "train")]
        split: String,
        /// Synthetic occluded variants per photo without occlusions.
        #[arg(long, default_value_t = 4)]
        synthetic: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value = "models/occlusion_v1.json")]
        out: PathBuf,
    },
    /// Measure the capture checks on a labels CSV: per problem precision and recall, and the share
    /// of compliant photos any check rejects (JSON, and a PNG with --plot).
    EvalCapture {
        #[arg(long)]
        labels: PathBuf,
        #[arg(long)]
        root: PathBuf,
        /// Use only rows of this split.
        #[arg(long)]
        split: Option<String>,
        #[arg(long, default_value = "capture-report.json")]
        out: PathBuf,
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Measure the head-turn liveness challenge (ISO/IEC 30107-3): BPCER over real sequences,
    /// APCER per generated attack species.
    EvalLiveness {
        /// `sequence,step,file` rows of real photos of one person turning.
        #[arg(long)]
        sequences: PathBuf,
        /// `file,direction,identity` rows (the people, for spliced attacks).
        #[arg(long)]
        labels: PathBuf,
        #[arg(long)]
        root: PathBuf,
        /// Attacks of each generated species per sequence.
        #[arg(long, default_value_t = 8)]
        per_sequence: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Capture mode for the straight frame.
        #[arg(long, default_value = "check")]
        mode: wajah::CaptureMode,
        #[arg(long, default_value = "liveness-report.json")]
        out: PathBuf,
        /// Parallax histogram (PNG); the plane-fit histogram goes beside it (`<stem>_plane_fit.png`).
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Measure the `photo_of_id_photo` flag: generated photos of each pair's A photo, and the
    /// genuine pairs of a pairs file.
    EvalReplay {
        #[arg(long)]
        pairs: PathBuf,
        #[arg(long)]
        root: PathBuf,
        /// Attacks generated per ID photo.
        #[arg(long, default_value_t = 2)]
        per_photo: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Photos to use as backgrounds (scenes without faces).
        #[arg(long = "background")]
        backgrounds: Vec<PathBuf>,
        #[arg(long, default_value = "replay-report.json")]
        out: PathBuf,
    },
    /// Write an ID-photo crop of a photo (`id_photo.jpg`) and photos of it as a phone would take them
    /// when it is held up to the camera (shrunk, tilted, on a background, blurred, JPEG): attacks.
    MakeReplay {
        photo: PathBuf,
        #[arg(long, default_value_t = 4)]
        count: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long = "background")]
        backgrounds: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Plot genuine/impostor separation (d') against eye distance from `eval` reports.
    PlotSeparation {
        /// `name=report.json,report.json,...`, one line each.
        #[arg(long = "series", required = true)]
        series: Vec<separation::Series>,
        #[arg(long, default_value = "separation.png")]
        out: PathBuf,
    },
    /// Maintain a template database (safe while the service runs on it).
    Store {
        /// The database (the server's <data_dir>/templates.db).
        #[arg(long)]
        store: PathBuf,
        /// The current template key file.
        #[arg(long)]
        key: PathBuf,
        /// Older key files whose rows must still be readable.
        #[arg(long = "old-key")]
        old_keys: Vec<PathBuf>,
        #[command(subcommand)]
        action: StoreAction,
    },
}

#[derive(Subcommand)]
enum StoreAction {
    /// A consistent copy of the database while it is in use (restore: stop the service, put the
    /// copy in place of templates.db, start it).
    Backup {
        /// Where to write the copy (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Seal every row again with `--key`, after a key rotation (give the old keys with `--old-key`).
    Reseal,
    /// Check the database file's integrity and count the enrolments.
    Check,
    /// Verify the audit trail's hash chain and list its newest records.
    Audit {
        /// Records to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// The engine's settings: the same flags and `WAJAH_*` variables as `wajah-server`, over the
/// defaults. Batch commands get one model session per rayon worker, so they use every core.
fn engine(cli: &Cli, matches: &ArgMatches) -> Result<Arc<Engine>> {
    let mut config = EngineConfig::default();
    config.update_from_arg_matches(matches)?;
    config.sessions = rayon::current_num_threads();
    if cli.largest {
        config.face_policy = FacePolicy::Largest;
    }
    Ok(Arc::new(Engine::new(config).context("loading the engine")?))
}

fn main() -> Result<()> {
    let matches = EngineConfig::augment_args(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let engine = || engine(&cli, &matches);
    // Pairs files are read before the models load, so a malformed file fails at once.
    let out = match &cli.command {
        Command::Compare { a, b } => compare(&*engine()?, a, b)?,
        Command::Detect { image, draw } => detect(&*engine()?, image, draw.as_deref())?,
        Command::Eval { pairs: file, root, out, plots, scores, degrade_a, degrade_b, accuracy_a } => {
            let pairs = eval::read_pairs(file, root)?;
            let degradation = eval::Degradation { a: *degrade_a, b: *degrade_b, accuracy_a: *accuracy_a };
            eval::run(&*engine()?, &pairs, file, out, plots.as_deref(), scores.as_deref(), &degradation)?
        }
        Command::Calibrate { pairs: file, root, fmrs, rounds, out } => {
            let pairs = eval::read_pairs(file, root)?;
            calibrate::run(&*engine()?, &pairs, file, fmrs, *rounds, out)?
        }
        Command::Reverify { input, output, store, key } => {
            let engine = engine()?;
            let gallery = match (store, key) {
                (Some(db), Some(key)) => {
                    let store = SqliteStore::open(db, vec![TemplateKey::load(key)?])?;
                    let index = IndexConfig { kind: IndexKind::Exact, ..IndexConfig::default() };
                    Some(Gallery::open(engine.clone(), Box::new(store), index)?)
                }
                (Some(_), None) => anyhow::bail!("--store needs --key"),
                _ => None,
            };
            reverify::run(&engine, input, output, gallery.as_ref())?
        }
        Command::TrainOcclusion { labels, root, split, synthetic, seed, out } => {
            let rows = capture::read_labels(labels, root, Some(split))?;
            train::train(&*engine()?, &rows, labels, *synthetic, *seed, out)?
        }
        Command::EvalCapture { labels, root, split, out, plot } => {
            let rows = capture::read_labels(labels, root, split.as_deref())?;
            capture::eval(&*engine()?, &rows, labels, out, plot.as_deref())?
        }
        Command::EvalLiveness { sequences, labels, root, per_sequence, seed, mode, out, plot } => {
            let seqs = liveness::read_sequences(sequences, root)?;
            let labels = liveness::read_labels(labels, root)?;
            let report = liveness::eval_liveness(
                &*engine()?,
                &seqs,
                &labels,
                *per_sequence,
                *seed,
                *mode,
                plot.as_deref(),
            )?;
            std::fs::write(out, serde_json::to_string_pretty(&report)?)
                .with_context(|| format!("writing {}", out.display()))?;
            report
        }
        Command::EvalReplay { pairs: file, root, per_photo, seed, backgrounds, out } => {
            let pairs = eval::read_pairs(file, root)?;
            replay::eval_replay(&*engine()?, &pairs, *per_photo, *seed, backgrounds, out)?
        }
        Command::MakeReplay { photo, count, seed, backgrounds, out } => {
            replay::make_replay(&*engine()?, photo, *count, *seed, backgrounds, out)?
        }
        Command::PlotSeparation { series, out } => separation::plot(series, out)?,
        Command::Store { store, key, old_keys, action } => {
            let mut keys = vec![TemplateKey::load(key)?];
            for old in old_keys {
                keys.push(TemplateKey::load(old)?);
            }
            let db = store;
            let store = SqliteStore::open(db, keys)?;
            match action {
                StoreAction::Backup { to } => {
                    store.backup(to)?;
                    json!({ "backup": to, "enrolments": store.count()? })
                }
                StoreAction::Reseal => json!({ "resealed": store.reseal()?, "enrolments": store.count()? }),
                StoreAction::Check => {
                    store.integrity_check()?;
                    json!({ "integrity": "ok", "enrolments": store.count()? })
                }
                StoreAction::Audit { limit } => {
                    let log = AuditLog::open(db, TemplateKey::load(key)?)?;
                    json!({ "verified_records": log.verify()?, "newest": log.list(*limit)? })
                }
            }
        }
    };
    print_json(&out)
}

/// Writes `value` to stdout through one lock. A reader that has gone away (`wajah ... | head -1`) is a
/// normal end of output, not an error: the command ends quietly with status 0.
fn print_json(value: &Value) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush());
    match written {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn face_json(face: &Face) -> Value {
    json!({ "bbox": face.bbox, "landmarks": face.landmarks, "score": face.score })
}

fn analysis_json(path: &Path, a: &FaceAnalysis) -> Value {
    json!({
        "file": path,
        "faces_found": a.faces_found,
        "face": face_json(&a.face),
        "quality": a.quality,
        "timings_ms": a.timings,
    })
}

fn compare(engine: &Engine, a: &Path, b: &Path) -> Result<Value> {
    let fa = engine.analyze(&read(a)?).with_context(|| format!("{}", a.display()))?;
    let mut fb = engine.analyze(&read(b)?).with_context(|| format!("{}", b.display()))?;
    let decision = engine.compare(&fa.template, &fb.template)?;
    // A is the ID photo, B the selfie: B near-identical to A is a photo of the ID photo.
    engine.flag_id_photo_replay(&decision, &mut fb, wajah::FacePatch::of(fa.aligned.image()).as_ref());
    Ok(json!({
        "a": analysis_json(a, &fa),
        "b": analysis_json(b, &fb),
        "model": engine.model_id(),
        "score": decision.score,
        "threshold": decision.threshold,
        "matched": decision.matched,
        "decision": decision.verdict(),
    }))
}

fn detect(engine: &Engine, path: &Path, draw: Option<&Path>) -> Result<Value> {
    let photo = engine.decode(&read(path)?)?;
    let faces = engine.faces(&photo.image, FaceQuery::All)?;
    if let Some(out) = draw {
        let mut canvas = photo.image.clone();
        draw_faces(&mut canvas, &faces);
        canvas.save(out).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(json!({
        "file": path,
        "format": photo.format,
        "width": photo.image.width(),
        "height": photo.image.height(),
        "faces": faces.iter().map(face_json).collect::<Vec<_>>(),
    }))
}

/// Boxes in green, landmarks in the order right eye, left eye, nose, right mouth, left mouth.
fn draw_faces(canvas: &mut RgbImage, faces: &[Face]) {
    const COLOURS: [Rgb<u8>; 5] =
        [Rgb([255, 0, 0]), Rgb([0, 0, 255]), Rgb([0, 255, 255]), Rgb([255, 0, 255]), Rgb([255, 255, 0])];
    let thickness = (canvas.width().max(canvas.height()) / 400).max(1) as i32;
    for face in faces {
        let b = face.bbox;
        for t in 0..thickness {
            let rect = Rect::at(b.x as i32 - t, b.y as i32 - t)
                .of_size((b.width as i32 + 2 * t).max(1) as u32, (b.height as i32 + 2 * t).max(1) as u32);
            draw_hollow_rect_mut(canvas, rect, Rgb([0, 255, 0]));
        }
        for (p, colour) in face.landmarks.iter().zip(COLOURS) {
            draw_filled_circle_mut(canvas, (p.x as i32, p.y as i32), thickness + 1, colour);
        }
    }
}
