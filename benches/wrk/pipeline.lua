-- wrk script: HTTP/1.1 pipelining. Every write carries DEPTH requests for the URL's path,
-- sent back to back; wrk counts each response. DEPTH is the first script argument
-- (after `--`), 16 by default:
--   wrk -t1 -c100 -d10s -s benches/wrk/pipeline.lua http://127.0.0.1:8080/plaintext -- 16
-- (The shape of TechEmpower's pipeline.lua, so figures compare with published ones.)

init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
