use super::*;
use crate::bundle::{BundleDir, Tensor};

/// A scratch directory with a model file, `items.txt` (a, b, c) and unit item vectors.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.onnx"), b"not checked here").unwrap();
        std::fs::write(dir.path().join("items.txt"), "a\nb\nc\n").unwrap();
        let inputs = Inputs { dir };
        inputs.npy("vectors.npy", 3, 2, &[1.0, 0.0, 0.0, 1.0, 0.6, 0.8]);
        inputs
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn npy(&self, name: &str, rows: usize, cols: usize, data: &[f32]) {
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(
            self.path(name),
            npy::write_matrix("<f4", &format!("({rows}, {cols})"), &bytes),
        )
        .unwrap();
    }

    fn request(&self) -> PackRequest {
        PackRequest {
            strategy: StrategyType::Dssm,
            model: self.path("model.onnx"),
            vectors: self.path("vectors.npy"),
            tensor: None,
            items: self.path("items.txt"),
            interactions: None,
            normalise: false,
            name: None,
            out: self.path("bundle"),
        }
    }
}

fn err(req: &PackRequest) -> String {
    read_inputs(req).unwrap_err().to_string()
}

#[test]
fn a_packed_bundle_reads_back_verified_with_vectors_ids_and_stored_histories() {
    let inputs = Inputs::new();
    std::fs::write(
        inputs.path("interactions.csv"),
        "user_id,item_id,timestamp\nu1,c,10\nu2,a,5\nu1,a,20\n",
    )
    .unwrap();
    let req = PackRequest {
        interactions: Some(inputs.path("interactions.csv")),
        name: Some("toy".into()),
        ..inputs.request()
    };
    let checked = read_inputs(&req).unwrap();
    let manifest = write(&req, &checked, 7).unwrap();
    assert_eq!(manifest.strategy, StrategyType::Dssm);
    assert_eq!(manifest.dim, Some(2));
    assert_eq!(manifest.params[params::HISTORY_LENGTH], 7);
    assert_eq!(manifest.dataset.name, "toy");
    assert_eq!(
        (
            manifest.dataset.users,
            manifest.dataset.items,
            manifest.dataset.interactions
        ),
        (2, 3, 3)
    );

    let b = BundleDir::open(&req.out).unwrap();
    assert_eq!(b.manifest, manifest);
    assert_eq!(b.lines(files::ITEMS).unwrap(), ["a", "b", "c"]);
    assert_eq!(b.lines(files::USERS).unwrap(), ["u1", "u2"]);
    assert_eq!(b.read(files::MODEL).unwrap(), b"not checked here");
    let (vectors, dim) = twotower::read_vectors(&b).unwrap();
    assert_eq!((vectors, dim), (vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 2));
    let h = crate::strategies::read_history(&b, 2, 3).unwrap();
    // u1: a (t=20) then c (t=10), as indices of items.txt; u2: a.
    assert_eq!(h.items(0), [0, 2]);
    assert_eq!(h.times(0), [20, 10]);
    assert_eq!(h.items(1), [0]);
}

#[test]
fn vectors_that_do_not_match_the_item_list_are_refused_naming_both_files() {
    let inputs = Inputs::new();
    inputs.npy("vectors.npy", 2, 2, &[1.0, 0.0, 0.0, 1.0]);
    let e = err(&inputs.request());
    assert!(
        e.contains("vectors.npy: 2 vectors, but") && e.contains("items.txt lists 3 items"),
        "{e}"
    );
    assert!(!inputs.path("bundle").exists(), "nothing is written");
}

#[test]
fn unnormalised_vectors_are_refused_unless_pack_is_asked_to_normalise_them() {
    let inputs = Inputs::new();
    inputs.npy("vectors.npy", 3, 2, &[3.0, 4.0, 0.0, 1.0, 0.6, 0.8]);
    let e = err(&inputs.request());
    assert!(
        e.contains("row 0 (item `a`) has L2 norm 5") && e.contains("--normalise"),
        "{e}"
    );
    let req = PackRequest {
        normalise: true,
        ..inputs.request()
    };
    let checked = read_inputs(&req).unwrap();
    assert_eq!(&checked.vectors[..2], [0.6, 0.8]);
}

#[test]
fn zero_and_non_finite_vectors_are_refused_naming_the_item() {
    let inputs = Inputs::new();
    inputs.npy("vectors.npy", 3, 2, &[1.0, 0.0, 0.0, 0.0, 0.6, 0.8]);
    let req = PackRequest {
        normalise: true,
        ..inputs.request()
    };
    assert!(err(&req).contains("row 1 (item `b`) is all zeros"));
    inputs.npy("vectors.npy", 3, 2, &[1.0, 0.0, 0.0, 1.0, f32::NAN, 0.8]);
    assert!(err(&req).contains("row 2 (item `c`) holds a non-finite value"));
}

#[test]
fn blank_and_repeated_item_ids_are_refused_with_their_lines() {
    let inputs = Inputs::new();
    std::fs::write(inputs.path("items.txt"), "a\nb\na\n").unwrap();
    let e = err(&inputs.request());
    assert!(
        e.contains("items.txt:3: item `a` is listed twice (first on line 1)"),
        "{e}"
    );
    std::fs::write(inputs.path("items.txt"), "a\n\nc\n").unwrap();
    assert!(err(&inputs.request()).contains("items.txt:2: empty item id"));
}

#[test]
fn an_interaction_with_an_unlisted_item_is_refused_naming_the_item() {
    let inputs = Inputs::new();
    std::fs::write(
        inputs.path("interactions.csv"),
        "user_id,item_id\nu1,a\nu1,zz\nu2,yy\n",
    )
    .unwrap();
    let req = PackRequest {
        interactions: Some(inputs.path("interactions.csv")),
        ..inputs.request()
    };
    let e = err(&req);
    assert!(
        e.contains("interactions.csv: item `zz` is not in") && e.contains("2 unknown items"),
        "{e}"
    );
}

#[test]
fn a_safetensors_file_with_several_tensors_needs_the_tensor_named() {
    let inputs = Inputs::new();
    let bytes = kan_core::bundle::encode_tensors(
        "v.safetensors",
        &[
            (
                "item_tower".to_string(),
                Tensor::matrix(3, 2, vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8]),
            ),
            ("bias".to_string(), Tensor::f32(vec![0.0; 3])),
        ],
    )
    .unwrap();
    std::fs::write(inputs.path("v.safetensors"), bytes).unwrap();
    let req = PackRequest {
        vectors: inputs.path("v.safetensors"),
        ..inputs.request()
    };
    let e = err(&req);
    assert!(
        e.contains("no tensor `vectors` (tensors: bias, item_tower)") && e.contains("--tensor"),
        "{e}"
    );
    let named = PackRequest {
        tensor: Some("item_tower".into()),
        ..req.clone()
    };
    assert_eq!(read_inputs(&named).unwrap().dim, 2);
    let wrong_rank = PackRequest {
        tensor: Some("bias".into()),
        ..req
    };
    assert!(err(&wrong_rank).contains("tensor `bias` has shape [3]"));
}

#[test]
fn a_non_empty_output_directory_a_missing_model_and_other_strategies_are_refused() {
    let inputs = Inputs::new();
    std::fs::create_dir(inputs.path("bundle")).unwrap();
    std::fs::write(inputs.path("bundle/keep.txt"), "mine").unwrap();
    assert!(err(&inputs.request()).contains("exists and is not empty"));
    assert_eq!(
        std::fs::read_to_string(inputs.path("bundle/keep.txt")).unwrap(),
        "mine"
    );
    let req = PackRequest {
        out: inputs.path("fresh"),
        model: inputs.path("missing.onnx"),
        ..inputs.request()
    };
    assert!(err(&req).contains("--model") && err(&req).contains("missing.onnx: no such file"));
    let req = PackRequest {
        out: inputs.path("fresh"),
        strategy: StrategyType::Itemcf,
        ..inputs.request()
    };
    assert!(err(&req).contains("pack builds encoder bundles"));
    let req = PackRequest {
        out: inputs.path("fresh"),
        vectors: inputs.path("items.txt"),
        ..inputs.request()
    };
    assert!(err(&req).contains("use a .npy, .safetensors or .parquet file"));
}
