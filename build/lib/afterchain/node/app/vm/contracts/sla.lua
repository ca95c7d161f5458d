-- SLA penalty agreement (ABI v1), hook `sla_penalty`. Same rule as sla.c: the policy's
-- penalty, times (breaches so far + 1) up to 4x, halved for a missed first response, plus
-- 10% of the penalty per full day late (at most 30 days); the assigned organisation pays
-- the customer; one ticket pays at most 10x the penalty in total (state "paid/<ticket id>").
-- Output record: amount u64, payer str, payee str. Integer arithmetic only.

local DAY_MS = 86400000
local MAX_PENALTY = 1000000000000000

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

function sla_penalty(args)
  local r = reader(args)
  local p = read_policy(r)
  local ticket_id, deadline = r.str(), r.str()
  local deadline_ms, now = r.u64(), r.u64()
  local assigned, customer = r.str(), r.str()
  local breaches_before = r.u64()
  if not r.done() then revert("bad_args") end
  local base = p.penalty_amount
  if base < 0 or base > MAX_PENALTY then revert("penalty_out_of_range") end
  local mult = 4  -- u64 semantics: values >= 2^63 read as negative
  if breaches_before >= 0 and breaches_before < 3 then mult = breaches_before + 1 end
  local amount = base * mult
  if deadline == "first_response" then amount = amount // 2 end
  local late_days = 0
  if math.ult(deadline_ms, now) then
    local late_ms = now - deadline_ms
    if late_ms < 0 then late_days = 30 else late_days = math.min(late_ms // DAY_MS, 30) end
  end
  amount = amount + base * late_days // 10

  local key = "paid/" .. ticket_id
  local paid = counter_get(key)
  local cap = base * 10
  if paid >= cap then amount = 0
  elseif amount > cap - paid then amount = cap - paid end
  if amount ~= 0 then state_put(key, string.pack("<i8", paid + amount)) end
  return string.pack("<i8s4s4", amount, assigned, customer)
end
