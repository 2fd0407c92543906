import Autodiff

/// The DreamerV3 GRU gate update as one fused node.
///
/// With `g` = LayerNorm(Linear([h, x])) split into (reset, candidate, update) thirds:
///
///     r = sigmoid(g_r);  c = tanh(r * g_c);  u = sigmoid(g_u - 1);  h' = u c + (1 - u) h
///
/// The backward pass recomputes the gates from `g` (no activations are stored):
/// dh = dh' (1 - u); du = dh' (c - h); dc = dh' u; da = dc (1 - c^2);
/// dg_c = da r; dg_r = da g_c r (1 - r); dg_u = du u (1 - u).
public func gruGates(_ g: Variable, previous h: Variable) -> Variable {
  let (bn, d) = (h.shape[0], h.shape[1])
  precondition(g.shape == [bn, 3 * d], "gruGates: gates \(g.shape) must be [\(bn), \(3 * d)] for state \(h.shape)")
  let gv = g.value
  let hv = h.value
  let out = Tensor(shape: [bn, d]) { o in
    gv.withUnsafeBufferPointer { gp in
      hv.withUnsafeBufferPointer { hp in
        GRUKernel.forward(gp.baseAddress!, hp.baseAddress!, o.baseAddress!, rows: bn, width: d)
      }
    }
  }
  let needs = needsGradient([g, h])
  return customVJP(inputs: [g, h], outputs: [out]) { grads in
    var dg = Tensor(uninitializedShape: [bn, 3 * d])
    var dh = Tensor(uninitializedShape: [bn, d])
    dg.withUnsafeMutableBufferPointer { dgp in
      dh.withUnsafeMutableBufferPointer { dhp in
        grads[0].withUnsafeBufferPointer { gop in
          gv.withUnsafeBufferPointer { gp in
            hv.withUnsafeBufferPointer { hp in
              GRUKernel.backward(
                gp.baseAddress!, hp.baseAddress!, gop.baseAddress!, dgp.baseAddress!,
                dhp.baseAddress!, rows: bn, width: d)
            }
          }
        }
      }
    }
    return [needs[0] ? dg : nil, needs[1] ? dh : nil]
  }[0]
}

enum GRUKernel {
  static func forward(
    _ g: UnsafePointer<Float>, _ h: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
    rows: Int, width d: Int
  ) {
    Parallelism.forEachChunk(count: rows, grain: max(1, transcendentalGrain / max(d, 1))) { range in
      for r in range {
        let gr = g + r * 3 * d
        let gc = gr + d
        let gu = gr + 2 * d
        let hr = h + r * d
        let o = out + r * d
        var i = 0
        while i < d {
          let n = min(8, d - i)
          let rg = FastMath.sigmoid(ld(gr, i, n))
          let c = FastMath.tanh(rg * ld(gc, i, n))
          let u = FastMath.sigmoid(ld(gu, i, n) - 1)
          let hv = ld(hr, i, n)
          st(u * c + (1 - u) * hv, o, i, n)
          i += 8
        }
      }
    }
  }

  static func backward(
    _ g: UnsafePointer<Float>, _ h: UnsafePointer<Float>, _ gout: UnsafePointer<Float>,
    _ dg: UnsafeMutablePointer<Float>, _ dh: UnsafeMutablePointer<Float>, rows: Int, width d: Int
  ) {
    Parallelism.forEachChunk(count: rows, grain: max(1, transcendentalGrain / max(d, 1))) { range in
      for r in range {
        let gr = g + r * 3 * d
        let gc = gr + d
        let gu = gr + 2 * d
        let hr = h + r * d
        let go = gout + r * d
        let dgr = dg + r * 3 * d
        let dgc = dgr + d
        let dgu = dgr + 2 * d
        let dhr = dh + r * d
        var i = 0
        while i < d {
          let n = min(8, d - i)
          let rg = FastMath.sigmoid(ld(gr, i, n))
          let gcv = ld(gc, i, n)
          let c = FastMath.tanh(rg * gcv)
          let u = FastMath.sigmoid(ld(gu, i, n) - 1)
          let hv = ld(hr, i, n)
          let dout = ld(go, i, n)
          st(dout * (1 - u), dhr, i, n)
          let du = dout * (c - hv)
          let da = dout * u * (1 - c * c)
          st(da * rg, dgc, i, n)
          st(da * gcv * rg * (1 - rg), dgr, i, n)
          st(du * u * (1 - u), dgu, i, n)
          i += 8
        }
      }
    }
  }

  @inline(__always) static func ld(_ p: UnsafePointer<Float>, _ i: Int, _ n: Int) -> Float8 {
    n == 8 ? loadFloat8(p, i) : loadPartialFloat8(p, i, n)
  }
  @inline(__always) static func st(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ i: Int, _ n: Int) {
    if n == 8 { storeFloat8(v, p, i) } else { storePartialFloat8(v, p, i, n) }
  }
}
