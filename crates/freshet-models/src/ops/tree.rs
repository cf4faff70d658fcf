//! Tree ensembles (`TreeEnsembleClassifier` / `TreeEnsembleRegressor`,
//! ai.onnx.ml opsets 1 and 3), evaluated by a flattened, allocation-free
//! walker with onnxruntime's aggregation and post-transform conventions.
//!
//! Why our own: tree models (random forests, gradient boosting, XGBoost,
//! LightGBM) are the bulk of what gets deployed to score rows in SQL, so their
//! throughput matters, and their binary-classification output layout is a
//! pile of converter-specific conventions (one scored class vs two, base
//! values, "all weights positive") that must match onnxruntime bit-for-bit on
//! labels. The ensemble is compiled once into a flat node array; evaluation
//! walks each tree per row with the split comparison monomorphized when all
//! nodes share one mode (the common case), and aggregates into a per-row
//! score buffer reused across rows.

use std::collections::{HashMap, HashSet};

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{as_f32, boxed, floats_attr, rows_cols, Kernel};

const LEQ: u8 = 0;
const LT: u8 = 1;
const GTE: u8 = 2;
const GT: u8 = 3;
const EQ: u8 = 4;
const NEQ: u8 = 5;
const LEAF: u8 = 6;
/// Marker for "modes differ between nodes": read the mode from each node.
const MIXED: u8 = 255;

/// One flattened node. For leaves `lo..hi` indexes `Ensemble::leaf_weights`.
#[derive(Debug, Clone, Copy)]
struct Node {
    value: f32,
    feature: u32,
    /// true branch (split) / first leaf weight (leaf)
    lo: u32,
    /// false branch (split) / end of leaf weights (leaf)
    hi: u32,
    mode: u8,
    missing_true: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Softmax,
    Logistic,
    SoftmaxZero,
    Probit,
}

pub(crate) fn parse_post_transform(s: &str) -> TractResult<PostTransform> {
    Ok(match s {
        "NONE" => PostTransform::None,
        "SOFTMAX" => PostTransform::Softmax,
        "LOGISTIC" => PostTransform::Logistic,
        "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
        "PROBIT" => PostTransform::Probit,
        other => bail!("unknown post_transform {other}"),
    })
}

fn parse_mode(s: &str) -> TractResult<u8> {
    Ok(match s {
        "BRANCH_LEQ" => LEQ,
        "BRANCH_LT" => LT,
        "BRANCH_GTE" => GTE,
        "BRANCH_GT" => GT,
        "BRANCH_EQ" => EQ,
        "BRANCH_NEQ" => NEQ,
        "LEAF" => LEAF,
        other => bail!("unsupported tree node mode {other}"),
    })
}

/// The compiled forest shared by the classifier and the regressor.
#[derive(Debug)]
struct Ensemble {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// The nodes again, laid out for [`walk_lanes`]: index for index, with
    /// every leaf pointing at itself.
    steps: Vec<Step>,
    /// Per tree (as `roots`), the most splits on a path from root to leaf.
    depths: Vec<u32>,
    leaf_weights: Vec<(u32, f32)>,
    n_targets: usize,
    n_features: usize,
    uniform_mode: u8,
    aggregate: Aggregate,
    base_values: Vec<f32>,
    post: PostTransform,
}

/// Attribute names differ between the classifier (`class_*`) and the
/// regressor (`target_*`) only in their prefix.
fn build_ensemble(
    ctx: &ParsingContext,
    node: &NodeProto,
    leaf_prefix: &str,
    n_targets: usize,
    aggregate: Aggregate,
) -> TractResult<Ensemble> {
    let tree_ids = node.get_attr_vec::<i64>("nodes_treeids")?;
    let node_ids = node.get_attr_vec::<i64>("nodes_nodeids")?;
    let features = node.get_attr_vec::<i64>("nodes_featureids")?;
    let modes: Vec<u8> = node
        .get_attr_vec::<String>("nodes_modes")?
        .iter()
        .map(|m| parse_mode(m))
        .collect::<TractResult<_>>()?;
    let values = floats_attr(ctx, node, "nodes_values")?.unwrap_or_default();
    let trues = node.get_attr_vec::<i64>("nodes_truenodeids")?;
    let falses = node.get_attr_vec::<i64>("nodes_falsenodeids")?;
    let missing = node.get_attr_opt_vec::<i64>("nodes_missing_value_tracks_true")?;
    let n = tree_ids.len();
    let lens_ok = [
        node_ids.len(),
        features.len(),
        modes.len(),
        values.len(),
        trues.len(),
        falses.len(),
    ]
    .iter()
    .all(|&l| l == n)
        && missing
            .as_ref()
            .is_none_or(|m| m.is_empty() || m.len() == n);
    if n == 0 || !lens_ok {
        bail!("tree ensemble node attributes are empty or of different lengths");
    }

    let l_trees = node.get_attr_vec::<i64>(&format!("{leaf_prefix}_treeids"))?;
    let l_nodes = node.get_attr_vec::<i64>(&format!("{leaf_prefix}_nodeids"))?;
    let l_ids = node.get_attr_vec::<i64>(&format!("{leaf_prefix}_ids"))?;
    let l_weights = floats_attr(ctx, node, &format!("{leaf_prefix}_weights"))?.unwrap_or_default();
    if l_trees.len() != l_nodes.len()
        || l_ids.len() != l_nodes.len()
        || l_weights.len() != l_nodes.len()
    {
        bail!("tree ensemble leaf attributes have different lengths");
    }

    let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
    for i in 0..n {
        if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
            bail!("duplicate tree node ({}, {})", tree_ids[i], node_ids[i]);
        }
    }
    let mut weights_by_leaf: HashMap<usize, Vec<(u32, f32)>> = HashMap::new();
    for j in 0..l_nodes.len() {
        let Some(&ix) = index.get(&(l_trees[j], l_nodes[j])) else {
            bail!(
                "leaf weight refers to unknown node ({}, {})",
                l_trees[j],
                l_nodes[j]
            );
        };
        let target = usize::try_from(l_ids[j]).ok().filter(|t| *t < n_targets);
        let Some(target) = target else {
            bail!(
                "leaf weight target {} out of range (n = {n_targets})",
                l_ids[j]
            );
        };
        weights_by_leaf
            .entry(ix)
            .or_default()
            .push((target as u32, l_weights[j]));
    }

    let mut nodes = Vec::with_capacity(n);
    let mut leaf_weights = Vec::new();
    let mut children: HashSet<usize> = HashSet::new();
    let mut n_features = 0usize;
    for i in 0..n {
        let mode = modes[i];
        let missing_true = missing
            .as_ref()
            .and_then(|m| m.get(i))
            .is_some_and(|v| *v != 0);
        if mode == LEAF {
            let lo = leaf_weights.len() as u32;
            let mut total = 0.0f32;
            if let Some(w) = weights_by_leaf.get(&i) {
                leaf_weights.extend_from_slice(w);
                total = w.iter().map(|(_, w)| w).sum();
            }
            nodes.push(Node {
                // sum of the leaf's weights, for the single-target fast path
                value: total,
                feature: 0,
                lo,
                hi: leaf_weights.len() as u32,
                mode,
                missing_true,
            });
        } else {
            let child = |id: i64| -> TractResult<usize> {
                index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                    format_err!(
                        "node ({}, {}) has unknown child {id}",
                        tree_ids[i],
                        node_ids[i]
                    )
                })
            };
            let (t, f) = (child(trues[i])?, child(falses[i])?);
            children.insert(t);
            children.insert(f);
            let feature = usize::try_from(features[i])
                .map_err(|_| format_err!("negative feature id {}", features[i]))?;
            n_features = n_features.max(feature + 1);
            nodes.push(Node {
                value: values[i],
                feature: feature as u32,
                lo: t as u32,
                hi: f as u32,
                mode,
                missing_true,
            });
        }
    }
    // roots: per tree (in order of appearance), the first node that is
    // nobody's child
    let mut roots = Vec::new();
    let mut seen_trees = HashSet::new();
    for (i, tree) in tree_ids.iter().enumerate() {
        if !children.contains(&i) && seen_trees.insert(*tree) {
            roots.push(i as u32);
        }
    }
    let n_trees = tree_ids.iter().collect::<HashSet<_>>().len();
    if roots.len() != n_trees {
        bail!("could not find a root for every tree (cycle in the tree structure?)");
    }
    // reject cycles: every walk must end within n steps
    let mut depths = Vec::with_capacity(roots.len());
    for &r in &roots {
        let mut stack = vec![(r as usize, 0usize)];
        let mut deepest = 0;
        while let Some((i, depth)) = stack.pop() {
            if depth > n {
                bail!("tree structure has a cycle");
            }
            deepest = deepest.max(depth);
            let nd = nodes[i];
            if nd.mode != LEAF {
                stack.push((nd.lo as usize, depth + 1));
                stack.push((nd.hi as usize, depth + 1));
            }
        }
        depths.push(deepest as u32);
    }
    let steps = nodes
        .iter()
        .enumerate()
        .map(|(i, nd)| {
            if nd.mode == LEAF {
                Step {
                    value: 0.0,
                    feature: 0,
                    next: [i as u32, i as u32],
                    nan_true: false,
                }
            } else {
                Step {
                    value: nd.value,
                    feature: nd.feature,
                    next: [nd.hi, nd.lo],
                    nan_true: nd.missing_true,
                }
            }
        })
        .collect();
    let split_modes: HashSet<u8> = nodes
        .iter()
        .map(|n| n.mode)
        .filter(|m| *m != LEAF)
        .collect();
    let uniform_mode = if split_modes.len() == 1 {
        split_modes.into_iter().next().unwrap_or(MIXED)
    } else {
        MIXED
    };
    let base_values = floats_attr(ctx, node, "base_values")?.unwrap_or_default();
    let post = parse_post_transform(
        node.get_attr_opt::<&str>("post_transform")?
            .unwrap_or("NONE"),
    )?;
    Ok(Ensemble {
        nodes,
        roots,
        steps,
        depths,
        leaf_weights,
        n_targets,
        n_features,
        uniform_mode,
        aggregate,
        base_values,
        post,
    })
}

/// Whether feature value `x` takes a split's true branch under `mode`
/// against the split's threshold `value` (NaN never compares true).
#[inline(always)]
fn split_holds(mode: u8, x: f32, value: f32) -> bool {
    match mode {
        LEQ => x <= value,
        LT => x < value,
        GTE => x >= value,
        GT => x > value,
        EQ => x == value,
        _ => x != value,
    }
}

#[inline(always)]
fn walk<const M: u8>(nodes: &[Node], mut i: usize, row: &[f32]) -> usize {
    loop {
        let n = &nodes[i];
        if n.mode == LEAF {
            return i;
        }
        let x = row[n.feature as usize];
        let mode = if M == MIXED { n.mode } else { M };
        i = if split_holds(mode, x, n.value) || (n.missing_true && x.is_nan()) {
            n.lo
        } else {
            n.hi
        } as usize;
    }
}

/// A node as [`walk_lanes`] reads it: `next[1]` when the comparison holds
/// (or the value is NaN and `nan_true`), `next[0]` otherwise.
#[derive(Debug, Clone, Copy)]
struct Step {
    value: f32,
    feature: u32,
    next: [u32; 2],
    nan_true: bool,
}

/// Rows walked down one tree together by [`walk_lanes`].
const LANES: usize = 8;

/// The leaves reached by rows `first..first + LANES` of `x` (`cols` values
/// a row) in the tree at `root`, `depth` splits deep, for an ensemble whose
/// splits all compare with `M`. A walk is a chain of dependent loads and
/// data-dependent branches; here every row takes exactly `depth` steps (a
/// leaf steps to itself) with no branch on the data, and the rows' chains
/// are independent, so the CPU overlaps them.
#[inline(always)]
fn walk_lanes<const M: u8>(
    steps: &[Step],
    root: u32,
    depth: u32,
    x: &[f32],
    cols: usize,
    first: usize,
) -> [u32; LANES] {
    let rows: [&[f32]; LANES] =
        std::array::from_fn(|lane| &x[(first + lane) * cols..(first + lane + 1) * cols]);
    let mut at = [root; LANES];
    for _ in 0..depth {
        for lane in 0..LANES {
            let step = &steps[at[lane] as usize];
            let value = rows[lane][step.feature as usize];
            let go = split_holds(M, value, step.value) | (step.nan_true & value.is_nan());
            at[lane] = step.next[usize::from(go)];
        }
    }
    at
}

impl Ensemble {
    /// Raw aggregated scores per row: `scores[r*T..][..T]`, `has[..]` tells
    /// which targets received at least one leaf weight.
    fn aggregate_rows(
        &self,
        x: &[f32],
        cols: usize,
        rows: usize,
    ) -> TractResult<(Vec<f32>, Vec<bool>)> {
        if self.n_features > cols {
            bail!(
                "tree ensemble uses feature {} but the input has {cols} columns",
                self.n_features - 1
            );
        }
        match self.uniform_mode {
            LEQ => Ok(self.aggregate_rows_m::<LEQ>(x, cols, rows)),
            LT => Ok(self.aggregate_rows_m::<LT>(x, cols, rows)),
            GTE => Ok(self.aggregate_rows_m::<GTE>(x, cols, rows)),
            GT => Ok(self.aggregate_rows_m::<GT>(x, cols, rows)),
            _ => Ok(self.aggregate_rows_m::<MIXED>(x, cols, rows)),
        }
    }

    fn aggregate_rows_m<const M: u8>(
        &self,
        x: &[f32],
        cols: usize,
        rows: usize,
    ) -> (Vec<f32>, Vec<bool>) {
        let t = self.n_targets;
        let mut scores = vec![0f32; rows * t];
        let mut has = vec![false; rows * t];
        let nodes = &self.nodes[..];
        // Blocks of LANES rows walk each tree together (see walk_lanes);
        // the rest, and ensembles mixing comparison modes, a row at a time.
        // Either way a row's trees are added in tree order: the same sums.
        let lane_rows = if M == MIXED { 0 } else { rows - rows % LANES };
        if t == 1 && matches!(self.aggregate, Aggregate::Sum | Aggregate::Average) {
            let n_trees = self.roots.len() as f32;
            let finish = |acc: f32| {
                if self.aggregate == Aggregate::Average {
                    acc / n_trees
                } else {
                    acc
                }
            };
            for first in (0..lane_rows).step_by(LANES) {
                let mut acc = [0f32; LANES];
                for (&root, &depth) in self.roots.iter().zip(&self.depths) {
                    let leaves = walk_lanes::<M>(&self.steps, root, depth, x, cols, first);
                    for (a, &leaf) in acc.iter_mut().zip(&leaves) {
                        *a += nodes[leaf as usize].value;
                    }
                }
                for (lane, &a) in acc.iter().enumerate() {
                    scores[first + lane] = finish(a);
                    has[first + lane] = !self.roots.is_empty();
                }
            }
            for r in lane_rows..rows {
                let row = &x[r * cols..(r + 1) * cols];
                let mut acc = 0f32;
                for &root in &self.roots {
                    acc += nodes[walk::<M>(nodes, root as usize, row)].value;
                }
                scores[r] = finish(acc);
                has[r] = !self.roots.is_empty();
            }
            return (scores, has);
        }
        for first in (0..lane_rows).step_by(LANES) {
            for (&root, &depth) in self.roots.iter().zip(&self.depths) {
                let leaves = walk_lanes::<M>(&self.steps, root, depth, x, cols, first);
                for (lane, &leaf) in leaves.iter().enumerate() {
                    let r = first + lane;
                    self.accumulate(
                        &nodes[leaf as usize],
                        &mut scores[r * t..(r + 1) * t],
                        &mut has[r * t..(r + 1) * t],
                    );
                }
            }
        }
        for r in lane_rows..rows {
            let row = &x[r * cols..(r + 1) * cols];
            for &root in &self.roots {
                let leaf = &nodes[walk::<M>(nodes, root as usize, row)];
                self.accumulate(
                    leaf,
                    &mut scores[r * t..(r + 1) * t],
                    &mut has[r * t..(r + 1) * t],
                );
            }
        }
        if self.aggregate == Aggregate::Average {
            let n = self.roots.len() as f32;
            scores.iter_mut().for_each(|v| *v /= n);
        }
        (scores, has)
    }

    /// Adds one tree's leaf to a row's scores `sc` (and `hs`, which targets
    /// have received a weight), by the ensemble's aggregate.
    #[inline(always)]
    fn accumulate(&self, leaf: &Node, sc: &mut [f32], hs: &mut [bool]) {
        if sc.len() == 1 {
            // onnxruntime's single-target path: every tree contributes its
            // leaf value, 0 for a leaf without weights
            let w = leaf.value;
            match self.aggregate {
                Aggregate::Sum | Aggregate::Average => sc[0] += w,
                Aggregate::Min => {
                    if !hs[0] || w < sc[0] {
                        sc[0] = w
                    }
                }
                Aggregate::Max => {
                    if !hs[0] || w > sc[0] {
                        sc[0] = w
                    }
                }
            }
            hs[0] = true;
            return;
        }
        for &(target, w) in &self.leaf_weights[leaf.lo as usize..leaf.hi as usize] {
            let k = target as usize;
            match self.aggregate {
                Aggregate::Sum | Aggregate::Average => sc[k] += w,
                Aggregate::Min => {
                    if !hs[k] || w < sc[k] {
                        sc[k] = w
                    }
                }
                Aggregate::Max => {
                    if !hs[k] || w > sc[k] {
                        sc[k] = w
                    }
                }
            }
            hs[k] = true;
        }
    }

    /// Score the rows of input tensor `t` (`[N, F]`, or `[F]` as one row).
    fn score_input(&self, t: &Tensor) -> TractResult<(Vec<f32>, Vec<bool>, usize)> {
        let x = as_f32(t)?;
        let (rows, cols) = if x.rank() == 1 {
            (1, x.len())
        } else {
            rows_cols(x.shape())
        };
        let view = x.try_as_plain_ram()?;
        let (scores, has) = self.aggregate_rows(view.as_slice::<f32>()?, cols, rows)?;
        Ok((scores, has, rows))
    }
}

// ---------------------------------------------------------------- math (as onnxruntime)

/// e^x without a libm call and without branches, so that loops applying it
/// over a slice vectorize (libm's `expf` is one call per element, and was the
/// largest cost of scoring linear models). Cephes' range reduction and
/// polynomial: within 2 ulp of `expf` wherever the result is a normal float;
/// below about -87.3 it returns the smallest normal float instead of a
/// subnormal or zero, far inside the tolerance of any probability.
#[inline(always)]
pub(crate) fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.336_54, 88.376_26);
    let t = clamped * LOG2E + ROUND;
    let n = t - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n built from n's bits in t: (n + 127) << 23
    let scale = f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    let y = e_r * scale;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// onnxruntime's logistic: `1 / (1 + e^-|v|)`, mirrored for negative `v`.
#[inline(always)]
pub(crate) fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + exp_fast(-v.abs()));
    if v < 0.0 {
        1.0 - e
    } else {
        e
    }
}

/// A post transform over a whole `[rows, k]` buffer at once: element-wise
/// transforms run as one vectorizable loop, row-wise ones per row. Inlined,
/// so that a caller compiled for wider registers vectorizes it for them.
#[inline(always)]
pub(crate) fn apply_post_rows(post: PostTransform, v: &mut [f32], k: usize) {
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => v.iter_mut().for_each(|x| *x = logistic(*x)),
        PostTransform::Probit => v.iter_mut().for_each(|x| *x = probit(*x)),
        PostTransform::Softmax | PostTransform::SoftmaxZero => {
            for row in v.chunks_mut(k.max(1)) {
                apply_post(post, row);
            }
        }
    }
}

fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = exp_fast(*x - max);
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

fn softmax_zero(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        if x.abs() > 1e-7 {
            *x = exp_fast(*x - max);
            sum += *x;
        } else {
            *x = 0.0;
        }
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

pub(crate) fn apply_post(post: PostTransform, v: &mut [f32]) {
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => v.iter_mut().for_each(|x| *x = logistic(*x)),
        PostTransform::Probit => v.iter_mut().for_each(|x| *x = probit(*x)),
        PostTransform::Softmax => softmax(v),
        PostTransform::SoftmaxZero => softmax_zero(v),
    }
}

// ---------------------------------------------------------------- regressor

/// `TreeEnsembleRegressor`: `[N, F] → [N, n_targets]` float.
#[derive(Debug)]
pub(crate) struct TreeRegressor {
    ens: Ensemble,
}

pub(crate) fn tree_ensemble_regressor(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let n_targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1);
    let n_targets = usize::try_from(n_targets)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format_err!("bad n_targets"))?;
    let aggregate = match node
        .get_attr_opt::<&str>("aggregate_function")?
        .unwrap_or("SUM")
    {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("unknown aggregate_function {other}"),
    };
    let ens = build_ensemble(ctx, node, "target", n_targets, aggregate)?;
    if !ens.base_values.is_empty() && ens.base_values.len() != n_targets {
        bail!(
            "base_values has {} values for {n_targets} targets",
            ens.base_values.len()
        );
    }
    boxed(TreeRegressor { ens })
}

impl Kernel for TreeRegressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.ens.n_targets.to_dim())?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = if inputs[0].rank() >= 2 {
            inputs[0].shape[0].clone()
        } else {
            1.to_dim()
        };
        Ok(tvec!(f32::fact(&[n, self.ens.n_targets.to_dim()])))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let ens = &self.ens;
        let (mut scores, has, rows) = ens.score_input(&inputs[0])?;
        let t = ens.n_targets;
        for r in 0..rows {
            let sc = &mut scores[r * t..(r + 1) * t];
            for k in 0..t {
                let base = ens.base_values.get(k).copied().unwrap_or(0.0);
                sc[k] = if has[r * t + k] { sc[k] + base } else { base };
            }
            if t == 1 {
                if ens.post == PostTransform::Probit {
                    sc[0] = probit(sc[0]);
                }
            } else {
                apply_post(ens.post, sc);
            }
        }
        Ok(tvec!(tract_ndarray::Array2::from_shape_vec(
            (rows, t),
            scores
        )?
        .into_tvalue()))
    }
}

// ---------------------------------------------------------------- classifier

#[derive(Debug)]
pub(crate) enum Labels {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Labels {
    /// A classifier node's class labels: integers in attribute `int_attr`
    /// (its name differs between operators) or `classlabels_strings`.
    pub(crate) fn of_node(node: &NodeProto, int_attr: &str) -> TractResult<Labels> {
        if let Some(v) = node.get_attr_opt_vec::<i64>(int_attr)? {
            Ok(Labels::Int(v))
        } else if let Some(v) = node.get_attr_opt_vec::<String>("classlabels_strings")? {
            Ok(Labels::Str(v))
        } else {
            bail!("{} needs {int_attr} or classlabels_strings", node.op_type)
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }
    pub(crate) fn datum_type(&self) -> DatumType {
        match self {
            Labels::Int(_) => DatumType::I64,
            Labels::Str(_) => DatumType::String,
        }
    }
}

/// `TreeEnsembleClassifier`: `[N, F] → (label [N], scores [N, n_classes])`.
#[derive(Debug)]
pub(crate) struct TreeClassifier {
    ens: Ensemble,
    labels: Labels,
    /// Two classes but leaves only ever score one class id (onnxruntime's
    /// "binary case": the other class' score is derived).
    binary_case: bool,
    weights_all_positive: bool,
}

pub(crate) fn tree_ensemble_classifier(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = Labels::of_node(node, "classlabels_int64s")?;
    let n_classes = labels.len();
    if n_classes == 0 {
        bail!("TreeEnsembleClassifier without class labels");
    }
    let ens = build_ensemble(ctx, node, "class", n_classes, Aggregate::Sum)?;
    let used: HashSet<u32> = ens.leaf_weights.iter().map(|(t, _)| *t).collect();
    let binary_case = n_classes == 2 && used.len() == 1;
    let weights_all_positive = ens.leaf_weights.iter().all(|(_, w)| *w >= 0.0);
    boxed(TreeClassifier {
        ens,
        labels,
        binary_case,
        weights_all_positive,
    })
}

impl TreeClassifier {
    /// Finalize one row: returns the winning class index and fills `out`
    /// (n_classes probabilities/scores) — onnxruntime's FinalizeScores.
    fn finalize(&self, sc: &mut [f32], has: &mut [bool], out: &mut [f32]) -> usize {
        let ens = &self.ens;
        let n = sc.len();
        if n > 2 || n == 1 {
            for (k, b) in ens.base_values.iter().enumerate().take(n) {
                if has[k] {
                    sc[k] += b;
                } else {
                    sc[k] = *b;
                    has[k] = true;
                }
            }
            let mut best: Option<usize> = None;
            for k in 0..n {
                if has[k] && best.is_none_or(|b| sc[k] > sc[b]) {
                    best = Some(k);
                }
            }
            out.copy_from_slice(sc);
            apply_post(ens.post, out);
            return best.unwrap_or(0);
        }
        // two classes
        let mut single = false;
        match ens.base_values.len() {
            2 => {
                if has[1] {
                    // onnxruntime's convention: base_values[0] is ignored
                    sc[1] = ens.base_values[1] + sc[0];
                    sc[0] = -sc[1];
                } else {
                    sc[1] += ens.base_values[1];
                    sc[0] += ens.base_values[0];
                }
            }
            1 => {
                sc[0] += ens.base_values[0];
                single = !has[1];
            }
            _ => single = !has[1],
        }
        let pos_weight = if has[1] && !single {
            sc[1]
        } else if has[0] {
            sc[0]
        } else {
            0.0
        };
        if self.binary_case {
            let (winner, second) = if self.weights_all_positive {
                if pos_weight > 0.5 {
                    (1, 0)
                } else {
                    (0, 1)
                }
            } else if pos_weight > 0.0 {
                (1, 2)
            } else {
                (0, 3)
            };
            if single {
                let s = sc[0];
                if ens.post == PostTransform::Probit {
                    out[0] = probit(s);
                    out[1] = 0.0;
                } else if second <= 1 {
                    out[0] = 1.0 - s;
                    out[1] = s;
                } else if ens.post == PostTransform::Logistic {
                    out[0] = logistic(-s);
                    out[1] = logistic(s);
                } else {
                    out[0] = -s;
                    out[1] = s;
                }
            } else {
                out.copy_from_slice(sc);
                apply_post(ens.post, out);
            }
            return winner;
        }
        // two classes, both scored: plain arg max
        out.copy_from_slice(sc);
        apply_post(ens.post, out);
        if single {
            return usize::from(pos_weight > 0.0);
        }
        if has[1] && (!has[0] || sc[1] > sc[0]) {
            1
        } else {
            0
        }
    }
}

impl Kernel for TreeClassifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }
    fn n_outputs(&self) -> usize {
        2
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.labels.len().to_dim())?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = if inputs[0].rank() >= 2 {
            inputs[0].shape[0].clone()
        } else {
            1.to_dim()
        };
        Ok(tvec!(
            self.labels.datum_type().fact(std::slice::from_ref(&n)),
            f32::fact(&[n, self.labels.len().to_dim()])
        ))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let ens = &self.ens;
        let (mut scores, mut has, rows) = ens.score_input(&inputs[0])?;
        let c = ens.n_targets;
        let mut probs = vec![0f32; rows * c];
        let mut winners = Vec::with_capacity(rows);
        for r in 0..rows {
            let w = self.finalize(
                &mut scores[r * c..(r + 1) * c],
                &mut has[r * c..(r + 1) * c],
                &mut probs[r * c..(r + 1) * c],
            );
            winners.push(w);
        }
        let labels = match &self.labels {
            Labels::Int(l) => {
                tract_ndarray::Array1::from_iter(winners.iter().map(|&w| l[w])).into_tensor()
            }
            Labels::Str(l) => {
                tract_ndarray::Array1::from_iter(winners.iter().map(|&w| l[w].clone()))
                    .into_tensor()
            }
        };
        Ok(tvec!(
            labels.into_tvalue(),
            tract_ndarray::Array2::from_shape_vec((rows, c), probs)?.into_tvalue()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp_fast` replaces libm where onnxruntime's outputs are the oracle:
    /// it must stay within a few ulp of `expf` over the whole useful range.
    /// Rows walked a block at a time (walk_lanes) and rows walked one at a
    /// time score the same bits, for every split mode and missing-value rule
    /// the fixtures use.
    #[test]
    fn lanes_and_single_rows_agree() {
        for name in [
            "random_forest_clf",
            "gradient_boosting_clf",
            "xgboost_clf",
            "lightgbm_reg",
            "hist_gradient_boosting_clf",
            "tree_reg_min",
            "tree_clf_binary_logistic",
        ] {
            let (model, args) = crate::test_fixtures::fixture(name);
            let rows = args[0].len();
            assert!(rows > LANES, "{name} has rows for the lanes");
            let whole = model.predict("predict", &args, rows).expect("scores");
            for row in 0..rows {
                let one: Vec<_> = args.iter().map(|a| a.slice(row, 1)).collect();
                let single = model.predict("predict", &one, 1).expect("scores");
                assert_eq!(
                    single.as_ref(),
                    whole.slice(row, 1).as_ref(),
                    "{name} row {row}"
                );
            }
        }
    }

    #[test]
    fn exp_fast_matches_expf() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = f64::from(x.exp());
            let got = f64::from(exp_fast(x));
            worst = worst.max((got - want).abs() / want);
            x += 0.001_37;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert!(exp_fast(f32::NAN).is_nan());
        assert_eq!(exp_fast(0.0), 1.0);
        assert!(exp_fast(-1000.0) >= 0.0 && exp_fast(-1000.0) < 1e-37);
        assert!(exp_fast(1000.0) > 1e38);
    }

    #[test]
    fn logistic_is_symmetric_and_saturates() {
        for v in [-30.0f32, -3.0, -0.5, 0.0, 0.5, 3.0, 30.0] {
            let a = logistic(v);
            let b = 1.0 / (1.0 + (-f64::from(v)).exp());
            assert!((f64::from(a) - b).abs() < 1e-6, "{v}: {a} vs {b}");
        }
        assert_eq!(logistic(100.0), 1.0);
        assert_eq!(logistic(-100.0), 0.0);
        assert!(logistic(f32::NAN).is_nan());
    }
}
