-- Return/refund agreement (ABI v1), hook `return_decision`. Same rule as refund.c: the
-- return must have been requested within the window (the policy's, else 30 days) from the
-- sale; a customer gets at most 5 refunds (state "returns/<customer>"); "as_new" is
-- refunded, "used" only for an escrow of at most 50000 minor units, anything else goes
-- back to the depositor. Output record: refund u64 (0/1), reason str.

local DEFAULT_WINDOW_MS = 2592000000
local MAX_REFUNDS = 5
local USED_REFUND_MAX = 50000

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

local function decision(refund, reason)
  return string.pack("<i8s4", refund and 1 or 0, reason)
end

function return_decision(args)
  local r = reader(args)
  local p = read_policy(r)
  local _ticket_id, condition = r.str(), r.str()
  local escrow = r.u64()
  local customer = r.str()
  local requested, _received, sale_time = r.u64(), r.u64(), r.u64()
  if not r.done() then revert("bad_args") end

  local window = DEFAULT_WINDOW_MS
  if p.has_policy ~= 0 and p.return_window_ms ~= 0 then window = p.return_window_ms end
  if sale_time ~= 0 and math.ult(sale_time + window, requested) then return decision(false, "outside_window") end
  local key = "returns/" .. customer
  local refunds = counter_get(key)
  if refunds >= MAX_REFUNDS then return decision(false, "return_limit") end
  local refund
  if condition == "as_new" then refund = true
  elseif condition == "used" then
    if math.ult(USED_REFUND_MAX, escrow) then return decision(false, "used_high_value") end
    refund = true
  else refund = false end
  if not refund then return decision(false, string.sub("condition_" .. condition, 1, 32)) end
  state_put(key, string.pack("<i8", refunds + 1))
  return decision(true, "condition_ok")
end
