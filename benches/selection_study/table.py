import numpy as np, sys
from rules import evaluate, rule, RULES, tol_rule, soft, fused_test
sets = sys.argv[1:]
rows = [("today's `auto` (combined or mse)", lambda r: r["test"][rule(r["val"], ["combined","mse"], lambda v: v["known"])]),
        ("`combined` fixed", lambda r: r["test"]["combined"]),
        ("`mse` fixed", lambda r: r["test"]["mse"]),
        ("`mse_kl` fixed", lambda r: r["test"]["mse+kl+"]),
        ("`mse_logit` fixed", lambda r: r["test"]["logit+mse"]),
        ("`mse_half_logit` fixed", lambda r: r["test"]["mse+0.5logit"]),
        ("`mse_half_logit_kl` fixed", lambda r: r["test"]["mse+0.5logit+kl+"]),
        ("z(ln MSE) + max(z(logit), 0) fixed", lambda r: r["test"]["mse+logit+"]),
        ("validation incl. synthetic anomalies (partial shuffle), combined or mse", lambda r: r["test"][rule(r["val"], ["combined","mse"], lambda v: (v["known"]+v["partial"])/2)]),
        ("validation incl. synthetic anomalies (all three kinds), combined or mse", lambda r: r["test"][rule(r["val"], ["combined","mse"], lambda v: (v["known"]+(v["marginal"]+v["partial"]+v["range"])/3)/2)]),
        ("six fusions, strict best validation AUC", lambda r: r["test"][rule(r["val"], ["combined","mse","mse+kl+","logit+mse","mse+0.5logit","mse+0.5logit+kl+"], lambda v: v["known"])]),
        ("six fusions, softmax-weighted by validation AUC (tau 0.01)", lambda r: fused_test(r, *soft(r, 0.01))),
        ("six fusions, tolerance 0.01 toward label-free", lambda r: r["test"][tol_rule(r["val"], 0.01)]),
        ("**six fusions, tolerance 0.002 toward label-free (shipped)**", lambda r: r["test"][tol_rule(r["val"], 0.002)]),
]
res = {d: evaluate(d) for d in sets}
print("| rule | " + " | ".join(f"{d} ({len(res[d])})" for d in sets) + " |")
print("|---|" + "---|"*len(sets))
for name, f in rows:
    cells = []
    for d in sets:
        v = [f(r) for r in res[d]]
        cells.append(f"{np.mean([a for a,_ in v]):.3f} / {np.mean([p for _,p in v]):.3f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
