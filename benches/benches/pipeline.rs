//! The photo -> template path, stage by stage, on testdata photos, one inference thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use wajah::{CaptureMode, Engine, EngineConfig, FacePolicy, Step, resize};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("benches/ has a parent").to_path_buf()
}

/// A 512x512 crop-and-scale of a real photo (the size of the OpenCV figures in the shared recipe), and the
/// original photo bytes.
fn photos() -> Vec<(&'static str, Vec<u8>)> {
    ["identities/fr_obama/obama.jpg", "identities/df_jennifer/img53.jpg", "identities/of_carell/carell.jpg"]
        .into_iter()
        .map(|rel| (rel, std::fs::read(root().join("testdata").join(rel)).expect("testdata photo")))
        .collect()
}

fn config() -> EngineConfig {
    EngineConfig { intra_threads: 1, sessions: 1, ..EngineConfig::in_dir(&root()) }
}

fn engine() -> Engine {
    Engine::new(config()).expect("engine (run `make setup` first)")
}

fn stages(c: &mut Criterion) {
    let engine = engine();
    let mut group = c.benchmark_group("pipeline");
    group.measurement_time(Duration::from_secs(4)).sample_size(30).throughput(Throughput::Elements(1));
    let (name, bytes) = &photos()[0];
    let photo = engine.decode(bytes).expect("decodes").image;
    let square = resize(&photo, 512, 512);

    group.bench_function(
        BenchmarkId::new("decode", format!("{name}/{}x{}", photo.width(), photo.height())),
        |b| b.iter(|| engine.decode(bytes).expect("decodes")),
    );
    for side in [320u32, 640] {
        let input = resize(&photo, side, side);
        group.bench_function(BenchmarkId::new("detect", format!("yunet@{side}x{side}/1thread")), |b| {
            b.iter(|| engine.faces(&input, wajah::FaceQuery::Raw).expect("detects"))
        });
    }
    group.bench_function(BenchmarkId::new("find_faces", "512x512/policy(640+refine256)/1thread"), |b| {
        b.iter(|| engine.faces(&square, wajah::FaceQuery::All).expect("detects"))
    });
    // What the refining pass and the O-Net check cost on their own.
    let unrefined = Engine::new(EngineConfig {
        detect: wajah::DetectPolicy { refine: false, ..wajah::DetectPolicy::default() },
        ..config()
    })
    .expect("engine");
    group.bench_function(BenchmarkId::new("find_faces", "512x512/policy(640, no refine)/1thread"), |b| {
        b.iter(|| unrefined.faces(&square, wajah::FaceQuery::All).expect("detects"))
    });
    let face = engine.faces(&square, wajah::FaceQuery::All).expect("detects")[0];
    group.bench_function(BenchmarkId::new("confirm", "onet/1 face/1thread"), |b| {
        b.iter(|| engine.face_probabilities(&square, &[face]).expect("confirms"))
    });
    group.bench_function(BenchmarkId::new("align", "512x512->112x112"), |b| {
        b.iter(|| engine.align(&square, &face).expect("aligns"))
    });
    let aligned = engine.align(&square, &face).expect("aligns");
    group.bench_function(BenchmarkId::new("embed", "sface/112x112/1thread"), |b| {
        b.iter(|| engine.embed(&[&aligned]).expect("embeds"))
    });
    // The capture checks added to every photo: occlusion features and models, head pose.
    let template = engine.embed(&[&aligned]).expect("embeds").remove(0);
    group.bench_function(BenchmarkId::new("capture_checks", "occlusion+pose/112x112/1thread"), |b| {
        b.iter(|| {
            (
                engine.occlusions(&aligned, &template).expect("an occlusion model"),
                wajah::head_pose(&face.landmarks),
            )
        })
    });
    let eight: Vec<_> = std::iter::repeat_n(&aligned, 8).collect();
    group.throughput(Throughput::Elements(8));
    group.bench_function(BenchmarkId::new("embed", "sface/112x112/batch8/1thread"), |b| {
        b.iter(|| engine.embed(&eight).expect("embeds"))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("photo_to_template", "512x512 image/1thread"), |b| {
        b.iter(|| engine.analyze_image(&square, FacePolicy::Single).expect("a face"))
    });
    for (name, bytes) in photos() {
        group.bench_function(BenchmarkId::new("photo_to_template", format!("{name} bytes/1thread")), |b| {
            b.iter(|| engine.analyze(&bytes).expect("a face"))
        });
    }
    group.finish();
}

/// A 4-frame liveness check (real ORL head-turn photos) against one photo's template, on a pool of
/// one thread and of two (frames are analysed in parallel).
fn liveness(c: &mut Criterion) {
    let config = EngineConfig { intra_threads: 1, sessions: 2, ..EngineConfig::in_dir(&root()) };
    let engine = Engine::new(config).expect("engine (run `make setup` first)");
    let frames: Vec<Vec<u8>> = ["orl_s1_1.pgm", "orl_s1_5.pgm", "orl_s1_6.pgm", "orl_s1_9.pgm"]
        .iter()
        .map(|n| std::fs::read(root().join("testdata/liveness/poses").join(n)).expect("testdata photo"))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let steps = [Step::Straight, Step::TurnLeft, Step::TurnRight, Step::LookUp];
    let mut group = c.benchmark_group("liveness");
    group.measurement_time(Duration::from_secs(4)).sample_size(20);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        group.bench_function(
            BenchmarkId::new("photo_to_template", format!("orl 92x112/{threads}thread")),
            |b| b.iter(|| pool.install(|| engine.analyze(&frames[0]).expect("a face"))),
        );
        group.bench_function(BenchmarkId::new("check_liveness", format!("4 frames/{threads}thread")), |b| {
            b.iter(|| {
                pool.install(|| {
                    engine.check_liveness(&steps, &refs, CaptureMode::Check, None).expect("checked")
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stages, liveness);
