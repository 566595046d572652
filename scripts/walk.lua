-- wrk script: a walk of collection `feed` by TAXII `next` (limit 100), from the first page
-- again after the last (scripts/audit-ab, scripts/bench audit).
local first = "/concord/collections/feed/objects/?limit=100"
local path = first
request = function() return wrk.format("GET", path) end
response = function(status, headers, body)
  local n = body and body:match('"next":"([^"]+)"')
  if status == 200 and n then path = first .. "&next=" .. n else path = first end
end
