import numpy as np, json, glob, sys
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score as auc, average_precision_score as ap
from sklearn.decomposition import PCA
for d, name in [a.split("=") for a in sys.argv[1:]]:
    m = json.load(open(f"{name}.json")); X = np.fromfile(f"{name}.x.f32", dtype="<f4").reshape(m["rows"], m["cols"])
    y = np.fromfile(f"{name}.y.i8", dtype="i1")
    try: t = np.fromfile(f"{name}.t.i8", dtype="i1")
    except: t = np.zeros_like(y)
    out=[]
    for f in sorted(glob.glob(f"out/{d}/run*.json")):
        j = json.load(open(f)); s = j["split"]
        tr = np.r_[s["unlabeled"], s["labeled"]]
        lo, hi = X[tr].min(0), X[tr].max(0); sc = lambda a: (a-lo)/np.where(hi>lo, hi-lo, 1)
        te = np.array(s["test"])
        r = {}
        ifo = IsolationForest(random_state=j["seed"]).fit(sc(X[tr])); r["iforest"] = -ifo.score_samples(sc(X[te]))
        p = PCA(n_components=0.9, random_state=0).fit(sc(X[s["unlabeled"]])); Z = sc(X[te]); r["pca"] = ((Z - p.inverse_transform(p.transform(Z)))**2).sum(1)
        yy = y[te]; tt = t[te]
        types = sorted(set(tt[yy==1]))
        out.append({k:(auc(yy,v), ap(yy,v), {int(k2): auc(np.r_[np.zeros((yy==0).sum()),np.ones(((tt==k2)&(yy==1)).sum())], np.r_[v[yy==0], v[(tt==k2)&(yy==1)]]) for k2 in types} if len(types)>1 else {}) for k,v in r.items()})
    for k in out[0]:
        print(f"{d} {k}: {np.mean([o[k][0] for o in out]):.3f}/{np.mean([o[k][1] for o in out]):.3f} " + " ".join(f"{tk}:{np.mean([o[k][2][tk] for o in out]):.3f}" for tk in out[0][k][2]))
