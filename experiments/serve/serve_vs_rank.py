"""serve vs `rank --bank train` on real data (issue 15): the first N Flickr8k-CN val captions as a
Teddy 附件2 folder against all 1,000 val images, ranked by `tuwen rank --bank train`, then asked one
at a time of `tuwen serve` on the same model and image folder; the top-5 ids must be identical.
  python3 experiments/serve/serve_vs_rank.py MODEL [N]   (features cached: $TUWEN_CACHE)"""
import csv, json, os, subprocess, sys, tempfile, time, urllib.error, urllib.parse, urllib.request

model = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
binary = os.environ.get("TUWEN_BIN", "target/release/tuwen")
data = os.environ.get("TUWEN_DATA", "../shared/data") + "/flickr8k-cn"
rows = list(csv.reader(open(f"{data}/val.csv", encoding="utf-8")))[1:]
images = sorted({r[0] for r in rows})
tmp = tempfile.mkdtemp()
d2 = os.path.join(tmp, "附件2")
os.makedirs(os.path.join(d2, "ImageData"))
for i in images:
    os.symlink(os.path.abspath(f"{data}/images/{i}"), os.path.join(d2, "ImageData", i))
with open(os.path.join(d2, "word_test.csv"), "w", encoding="utf-8", newline="") as f:
    w = csv.writer(f); w.writerow(["text_id", "caption"])
    for k, r in enumerate(rows[:n]):
        w.writerow([f"Word-{1000000001 + k}", r[1]])
with open(os.path.join(d2, "image_data.csv"), "w", encoding="utf-8", newline="") as f:
    w = csv.writer(f); w.writerow(["image_id"]); w.writerows([[i] for i in images])
out = os.path.join(tmp, "out")
subprocess.run([binary, "rank", "--quiet", "--bank", "train", "--model", model, "--teddy-dir", d2,
                "--out-dir", out], check=True)
want = {}
for r in list(csv.reader(open(os.path.join(out, "result1.csv"), encoding="utf-8")))[1:]:
    want.setdefault(r[0], []).append(r[2])
srv = subprocess.Popen([binary, "serve", "--quiet", "--port", "0", "--model", model, "--images",
                        os.path.join(d2, "ImageData")], stdout=subprocess.PIPE, text=True)
try:
    line = srv.stdout.readline()
    addr = line.split("http://")[1].split("/")[0]
    same = 0
    caps = list(csv.reader(open(os.path.join(d2, "word_test.csv"), encoding="utf-8")))[1:]
    for tid, cap in caps:
        url = f"http://{addr}/api/search?k=5&q={urllib.parse.quote(cap)}"
        try:
            v = json.load(urllib.request.urlopen(url, timeout=30))
        except urllib.error.HTTPError as e:  # e.g. no known term: rank answers it, serve refuses
            print(f"{tid} {cap}: serve {e.code}"); continue
        got = [r["id"] for r in v["results"]]
        same += got == want[tid]
        if got != want[tid]:
            print(f"{tid} {cap}: serve {got} vs rank {want[tid]}")
    print(json.dumps({"queries": len(caps), "identical_top5": same, "gallery": len(images),
                      "model": model, "date": time.strftime("%Y-%m-%dT%H:%M:%S")}))
finally:
    srv.kill()
