//! Our variable names → `bench/reference.py`'s module names, in one place (`unas diagnose
//! parity-torch` writes our state under the reference's names; the reference loads it with every name
//! required both ways).
//!
//! | ours | reference |
//! |---|---|
//! | `stem.conv.*`, `stem.bn.*` | `stem.0.*`, `stem.1.*` |
//! | `cells.{l}.node{i+2}.edge{j}.{op}.*` (supernet) | `cells.{l}.edges.{i}.{j}.ops.{k}.*`, k the op's index |
//! | `cells.{l}.node{i+2}.branch{s}.{op}.*` (evaluation network) | `cells.{l}.ops.{i}.{s}.*` |
//! | `auxiliary_head.{conv1,bn1,conv2,bn2}.*` | `auxiliary_head.features.{2,3,5,6}.*` |
//! | `{normal,reduce}/node{i}/{inputs,ops}` (logits) | index 2i (+1 for ops) (+8 for reduce), as `{:02}` |
//! | ProxylessNAS: every variable of either network | the same name |
//! | ProxylessNAS logits `normal`, `reduce` | `00`, `01` |
//! | RELAX's φ `w1`, `b1`, `w2`, `b2` | `fc1.weight` (transposed), `fc1.bias`, `fc2.weight` (transposed), `fc2.bias` |
//!
//! Everything else (`cells.{l}.preprocess{0,1}.*`, the ops' `dw1`/`pw1`/`bn1`…, `classifier.*`) has
//! the same name in both.

use anyhow::{bail, Context, Result};

use crate::nas::space::darts::{Primitive, PRIMITIVES};

/// `node{n}` → n − 2 (the intermediate node's index).
fn node_index(part: &str) -> Result<usize> {
    let n: usize = part
        .strip_prefix("node")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("`{part}` is not a node"))?;
    n.checked_sub(2)
        .with_context(|| format!("node {n} is a cell input"))
}

fn numbered(part: &str, prefix: &str) -> Result<usize> {
    part.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("`{part}` is not `{prefix}N`"))
}

/// The part of a name both networks share: the stem renamed, the rest as it is.
fn common(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("stem.conv.") {
        format!("stem.0.{rest}")
    } else if let Some(rest) = name.strip_prefix("stem.bn.") {
        format!("stem.1.{rest}")
    } else {
        name.to_owned()
    }
}

/// A DARTS supernet variable's reference name.
pub fn search_net(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["cells", l, node, edge, op, rest @ ..] if node.starts_with("node") => {
            let i = node_index(node)?;
            let j = numbered(edge, "edge")?;
            let prim: Primitive = op.parse()?;
            let k = PRIMITIVES
                .iter()
                .position(|&p| p == prim)
                .with_context(|| format!("{prim} is not a supernet op"))?;
            Ok(format!(
                "cells.{l}.edges.{i}.{j}.ops.{k}.{}",
                rest.join(".")
            ))
        }
        _ => Ok(common(name)),
    }
}

/// A DARTS evaluation network variable's reference name.
pub fn eval_net(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["cells", l, node, branch, _op, rest @ ..] if node.starts_with("node") => {
            let i = node_index(node)?;
            let s = numbered(branch, "branch")?;
            Ok(format!("cells.{l}.ops.{i}.{s}.{}", rest.join(".")))
        }
        ["auxiliary_head", layer, rest @ ..] if *layer != "classifier" => {
            let index = match *layer {
                "conv1" => 2,
                "bn1" => 3,
                "conv2" => 5,
                "bn2" => 6,
                other => bail!("unknown auxiliary-head layer `{other}`"),
            };
            Ok(format!(
                "auxiliary_head.features.{index}.{}",
                rest.join(".")
            ))
        }
        _ => Ok(common(name)),
    }
}

/// A ProxylessNAS-space variable's reference name (both networks): the same (the reference builds
/// its modules under our names: `stem.{conv,bn}`, `first.…`, `blocks.{i}.{op}.{expand,depthwise,
/// project}.{conv,bn}` in the supernet, `blocks.{i}.…` in the evaluation network, `head`,
/// `classifier`).
pub fn proxyless_net(name: &str) -> Result<String> {
    Ok(name.to_owned())
}

/// A ProxylessNAS logit group's index in the reference's list: `normal` 00, `reduce` 01.
pub fn proxyless_alpha(group: &str) -> Result<String> {
    match group {
        "normal" => Ok("00".into()),
        "reduce" => Ok("01".into()),
        other => bail!("unknown ProxylessNAS logit group `{other}`"),
    }
}

/// A RELAX control-variate parameter's reference name (`RelaxCV`: two `nn.Linear`s; the reference
/// transposes the weights, which unas keeps as [in, out]).
pub fn relax(name: &str) -> Result<String> {
    Ok(match name {
        "w1" => "fc1.weight",
        "b1" => "fc1.bias",
        "w2" => "fc2.weight",
        "b2" => "fc2.bias",
        other => bail!("unknown RELAX parameter `{other}`"),
    }
    .to_owned())
}

/// A logit group's index in the reference's list (`DartsAlphas`), as two digits.
pub fn alpha(group: &str) -> Result<String> {
    let parts: Vec<&str> = group.split('/').collect();
    let [cell, node, what] = parts.as_slice() else {
        bail!("`{group}` is not `cell/nodeI/inputs|ops`");
    };
    let i = numbered(node, "node")?;
    let base = match *cell {
        "normal" => 0,
        "reduce" => 8,
        other => bail!("unknown cell type `{other}`"),
    };
    let off = match *what {
        "inputs" => 0,
        "ops" => 1,
        other => bail!("unknown selector `{other}`"),
    };
    Ok(format!("{:02}", base + 2 * i + off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_the_reference_modules() {
        let cases = [
            (search_net("stem.conv.weight"), "stem.0.weight"),
            (search_net("stem.bn.running_var"), "stem.1.running_var"),
            (
                search_net("cells.2.node3.edge1.sep_conv_5x5.dw2.weight"),
                "cells.2.edges.1.1.ops.4.dw2.weight",
            ),
            (
                search_net("cells.0.preprocess0.conv.weight"),
                "cells.0.preprocess0.conv.weight",
            ),
            (search_net("classifier.bias"), "classifier.bias"),
            (
                eval_net("cells.4.node5.branch1.dil_conv_3x3.pw.weight"),
                "cells.4.ops.3.1.pw.weight",
            ),
            (
                eval_net("auxiliary_head.bn2.running_mean"),
                "auxiliary_head.features.6.running_mean",
            ),
            (
                eval_net("auxiliary_head.classifier.weight"),
                "auxiliary_head.classifier.weight",
            ),
            (alpha("normal/node0/inputs"), "00"),
            (alpha("reduce/node3/ops"), "15"),
            (relax("w2"), "fc2.weight"),
        ];
        for (got, want) in cases {
            assert_eq!(got.unwrap(), want);
        }
        assert!(search_net("cells.0.node1.edge0.sep_conv_3x3.dw1.weight").is_err());
        assert!(eval_net("auxiliary_head.conv9.weight").is_err());
    }
}
