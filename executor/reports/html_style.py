"""The investigation page's stylesheet, inlined so the page opens offline from a single file."""

STYLE = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f8;color:#1f2933;
  font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:24px 20px 48px}
a{color:#1d4ed8;text-decoration:none}a:hover{text-decoration:underline}
h1{font-size:24px;line-height:1.25;margin:0}
h2{font-size:13px;letter-spacing:.06em;text-transform:uppercase;color:#52606d;margin:0 0 10px}
h3{font-size:16px;margin:0}
.card{background:#fff;border:1px solid #e4e7eb;border-radius:10px;padding:18px 20px;
  margin:0 0 16px;box-shadow:0 1px 2px rgba(15,23,42,.04)}
header.alert{display:flex;gap:14px;align-items:flex-start;margin-bottom:16px}
.dot{width:14px;height:14px;border-radius:50%;margin-top:6px;flex:none}
.firing{background:#dc2626;box-shadow:0 0 0 4px #fee2e2}.resolved{background:#16a34a;
  box-shadow:0 0 0 4px #dcfce7}
.sub{color:#616e7c;font-size:13px;margin:4px 0 0}
.chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px}
.chip{font-size:12px;background:#eef1f4;color:#3e4c59;border-radius:999px;padding:2px 10px}
.chip b{font-weight:600}
.banner{background:#fffbeb;border:1px solid #fcd34d;border-left:5px solid #f59e0b;
  border-radius:8px;padding:10px 14px;margin:0 0 16px;font-size:14px}
.banner.failed{background:#fef2f2;border-color:#fca5a5;border-left-color:#dc2626}
.headline{font-size:21px;line-height:1.35;font-weight:650;margin:0 0 12px}
.story{display:grid;grid-template-columns:minmax(0,1fr);gap:8px 24px}
.facts{margin:0;padding-left:18px}.facts li{margin:0 0 6px}
.cites{white-space:nowrap;margin-left:4px}
.cites a{font-size:11px;font-weight:600;background:#e0e7ff;color:#3730a3;border-radius:4px;
  padding:1px 5px;margin-left:2px;vertical-align:1px}
.cites a:hover{background:#c7d2fe;text-decoration:none}
.narrator{color:#7b8794;font-size:12px;margin-top:10px}
.ok{color:#15803d}.warn{color:#b45309}
.causes{list-style:none;margin:0;padding:0;display:grid;gap:10px;
  grid-template-columns:repeat(auto-fit,minmax(300px,1fr))}
.cause{border:1px solid #e4e7eb;border-radius:8px;padding:12px 14px;position:relative}
.cause.top{border-color:#fca5a5;background:#fffafa}
.rank{font-size:12px;font-weight:700;color:#fff;background:#52606d;border-radius:4px;
  padding:1px 7px;margin-right:6px}.cause.top .rank{background:#dc2626}
.cause .what{font-weight:600;margin:6px 0 4px}
.cause .meta{font-size:13px;color:#52606d}
.bar{height:6px;background:#eef1f4;border-radius:3px;margin:8px 0 6px;overflow:hidden}
.bar span{display:block;height:100%;background:#f97316}
.two{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px;margin:0 0 16px}
.two .card{margin:0}
.steps{margin:0;padding-left:20px}.steps li{margin:0 0 6px}
.hyp{margin:0;padding-left:18px;color:#3e4c59;font-style:italic}
.hyp li{margin:0 0 6px}
.note{color:#7b8794;font-size:12px;margin:6px 0 0}
.tree,.tree ul{list-style:none;margin:0;padding-left:18px}
.tree{padding-left:0}
.tree li{position:relative;margin:4px 0;padding-left:14px}
.tree li::before{content:"";position:absolute;left:0;top:12px;width:9px;
  border-top:1px solid #cbd2d9}
.tree ul{border-left:1px solid #cbd2d9;margin-left:6px}
.tag{font-size:11px;color:#52606d;background:#eef1f4;border-radius:4px;padding:1px 6px;
  margin-left:6px;white-space:nowrap}
.tag.cause{background:#fee2e2;color:#b91c1c}
.sev{font-size:11px;font-weight:700;text-transform:uppercase;border-radius:4px;padding:1px 6px}
.sev-critical{background:#fee2e2;color:#b91c1c}.sev-warning{background:#fef3c7;color:#92400e}
.sev-info{background:#e0f2fe;color:#075985}
.finding{scroll-margin-top:12px}
.finding:target{outline:3px solid #818cf8;outline-offset:2px}
.finding .head{display:flex;flex-wrap:wrap;align-items:center;gap:6px}
.fid{font-weight:700;color:#3730a3}
.finding p{margin:8px 0}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:13px;margin:8px 0}
.kv dt{color:#7b8794}.kv dd{margin:0;overflow-wrap:anywhere}
.evidence{border-top:1px dashed #e4e7eb;margin-top:12px;padding-top:10px}
.evidence h4{font-size:13px;margin:0 0 6px;color:#3e4c59}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef1f4;vertical-align:top}
th{color:#52606d;font-weight:600;background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.text{max-width:420px;overflow-wrap:anywhere;color:#3e4c59}
details summary{cursor:pointer;color:#1d4ed8;font-size:13px;margin-top:6px}
pre{background:#0f172a;color:#e2e8f0;border-radius:6px;padding:10px 12px;overflow-x:auto;
  font-size:12px;line-height:1.45;margin:6px 0}
.params{font-size:12px;color:#52606d;overflow-wrap:anywhere}
.figure{margin:4px 0 0;max-width:620px}.figure svg{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#52606d;display:flex;flex-wrap:wrap;gap:14px;margin-top:4px}
figcaption i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:3px}
.mitigation{font-size:13px;margin:4px 0}.mitigation b{color:#065f46}
.counts span{margin-right:12px;font-size:13px}
.st-found{color:#15803d}.st-error,.st-crashed{color:#b91c1c}.st-timeout{color:#7e22ce}
.st-nothing,.st-skipped{color:#7b8794}
.feedback{display:inline-flex;gap:6px;margin:8px 0 0}
.feedback button{font:inherit;font-size:12px;border:1px solid #cbd2d9;background:#fff;
  border-radius:6px;padding:2px 10px;cursor:pointer}
.feedback button:hover{background:#f0f4f8}
footer{color:#9aa5b1;font-size:12px;text-align:center;margin-top:24px}
@media (min-width:900px){.story.with-chart{grid-template-columns:minmax(0,1.1fr) minmax(0,1fr)}}
@media print{body{background:#fff}.card{box-shadow:none}details{display:block}}
"""
