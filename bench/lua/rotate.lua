-- wrk script: a different token on every request (M6, and the 100k-token fill for M4).
-- TOKENS_FILE: one raw token per line.
-- Requests are built once in init() so the load generator spends nothing per request.
local reqs, n, i = {}, 0, 0

function init(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    n = n + 1
    reqs[n] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line })
  end
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
