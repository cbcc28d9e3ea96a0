"""Converts ../shared/data/NAME.npz into the raw files examples/score_dump.rs reads
(NAME.x.f32, NAME.y.i8, NAME.t.i8, NAME.json) in the current directory.
Usage: to_raw.py DATA_DIR NAME..."""
import numpy as np, json, sys
for name in sys.argv[2:]:
    z = np.load(f"{sys.argv[1]}/{name}.npz")
    X = z["X"].astype("<f4"); y = z["y"].astype("i1")
    X.tofile(f"{name}.x.f32"); y.tofile(f"{name}.y.i8")
    if "anomaly_type" in z: z["anomaly_type"].astype("i1").tofile(f"{name}.t.i8"); print(name, np.unique(z["anomaly_type"][y==1], return_counts=True))
    json.dump({"rows": X.shape[0], "cols": X.shape[1]}, open(f"{name}.json","w"))
    print(name, X.shape, y.sum())
