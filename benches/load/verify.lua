-- wrk script: POST /v1/verifications (multipart) with one selfie; counts statuses, prints p50/p99.
local f = assert(io.open(os.getenv("SELFIE"), "rb"))
local photo = f:read("*all")
f:close()
local b = "wajahloadboundary"
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. b
wrk.body = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"nik\"\r\n\r\n" .. os.getenv("NIK") ..
  "\r\n--" .. b .. "\r\nContent-Disposition: form-data; name=\"selfie\"; filename=\"selfie.jpg\"\r\n\r\n" ..
  photo .. "\r\n--" .. b .. "--\r\n"

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d: %d\n", k, v)) end
  io.write(string.format("requests/s %.1f, p50 %.1f ms, p99 %.1f ms\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
