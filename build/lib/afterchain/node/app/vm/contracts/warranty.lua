-- Warranty eligibility agreement (ABI v1), hook `claim_eligibility`. Same rule as warranty.c:
-- a recalled product is covered; otherwise the claim must fall inside the coverage period
-- (from warranty start, else from the sale), its fault must be covered (an empty list covers
-- every fault), and a product gets at most 3 covered claims (state "claims/<gtin>/<serial>").
-- Args and output are records: u64 = 8 bytes little-endian, str = u32 length + bytes.

local MAX_CLAIMS = 3

local function reader(s)  -- malformed args revert with "bad_args", as in the C build
  local pos = 1
  local r = {}
  function r.u64()
    if pos + 8 > #s + 1 then revert("bad_args") end
    local v; v, pos = string.unpack("<i8", s, pos); return v
  end
  function r.str()
    if pos + 4 > #s + 1 then revert("bad_args") end
    local n = string.unpack("<I4", s, pos)
    if n > #s + 1 - (pos + 4) then revert("bad_args") end
    local v = string.sub(s, pos + 4, pos + 3 + n)
    pos = pos + 4 + n
    return v
  end
  function r.done() return pos == #s + 1 end
  return r
end

local function read_policy(r)
  local p = {has_policy = r.u64(), coverage_period_ms = r.u64(), first_response_ms = r.u64(),
             resolution_ms = r.u64(), penalty_amount = r.u64(), return_window_ms = r.u64(),
             owner_org = r.str(), service_org = r.str(), faults = {}}
  local n = r.u64()
  if n < 0 or n > 32 then revert("bad_args") end
  for i = 1, n do p.faults[i] = r.str() end
  return p
end

local function counter_get(key)
  local v = state_get(key)
  if v == nil or #v ~= 8 then return 0 end
  return (string.unpack("<i8", v))
end

local function decision(covered, reason)
  return string.pack("<i8s4", covered and 1 or 0, reason)
end

function claim_eligibility(args)
  local r = reader(args)
  local p = read_policy(r)
  local _ticket_id, _kind, fault = r.str(), r.str(), r.str()
  local gtin, serial, _batch = r.str(), r.str(), r.str()
  local recalled = r.u64()
  local _customer = r.str()
  local warranty_start, sale_time, now = r.u64(), r.u64(), r.u64()
  if not r.done() then revert("bad_args") end

  if recalled ~= 0 then return decision(true, "recall") end
  local start = warranty_start ~= 0 and warranty_start or sale_time
  if start == 0 then return decision(false, "warranty_unknown") end
  if math.ult(start + p.coverage_period_ms, now) then return decision(false, "warranty_expired") end
  if #p.faults > 0 then
    local found = false
    for i = 1, #p.faults do if p.faults[i] == fault then found = true end end
    if not found then return decision(false, "fault_not_covered") end
  end
  local key = "claims/" .. gtin .. "/" .. serial
  local claims = counter_get(key)
  if claims >= MAX_CLAIMS then return decision(false, "claim_limit") end
  state_put(key, string.pack("<i8", claims + 1))
  return decision(true, "covered")
end
