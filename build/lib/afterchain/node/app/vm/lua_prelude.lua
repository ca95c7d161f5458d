-- The hardened prelude of the lua54 contract VM (ABI v1). Trusted code: it runs once per
-- LuaRuntime and returns the functions the host uses. Contract code never sees this
-- file's locals, the real globals, `debug`, `coroutine`, `load` or the Python bridge.
--
-- Invariants (see node/vm/lua.py and docs/CONTRACTS.md):
-- * a contract runs in a fresh environment per call, holding only whitelisted, copied
--   functions (mutations die with the call);
-- * gas: 1 per VM instruction, charged TICK at a time by a count hook on the call's own
--   coroutine; once the call is aborted (out of gas, memory, limit, revert) every hook
--   and every wrapped pcall/xpcall re-raises, so nothing can swallow the abort;
-- * no source of non-determinism reaches the contract: `pairs` iterates in sorted key
--   order, `next` is absent, `table.sort` is a stable merge sort, `tostring` and
--   `string.format` never print addresses, no clock, no random, no libm transcendentals;
-- * the collector is stopped during a call; an emergency collection (the allocator hit
--   the cap) clears a weak canary and the next tick aborts the call.

local py_get, py_put, py_del, py_emit, TICK, BASE, C_HOST, C_GET, C_PUT, C_DEL, C_EMIT, C_BYTE = ...

local debug_sethook, debug_getmetatable, debug_setupvalue = debug.sethook, debug.getmetatable, debug.setupvalue
local co_create, co_resume = coroutine.create, coroutine.resume
local raw_pcall, raw_xpcall, raw_error, raw_type = pcall, xpcall, error, type
local raw_next, raw_rawget, raw_rawset, raw_rawequal, raw_rawlen = next, rawget, rawset, rawequal, rawlen
local raw_tostring, raw_tonumber, raw_select, raw_setmetatable, raw_getmetatable = tostring, tonumber, select, setmetatable, getmetatable
local raw_ipairs, raw_assert, raw_load = ipairs, assert, load
local collect = collectgarbage
local s_format, s_find, s_pack, s_unpack, s_rep = string.format, string.find, string.pack, string.unpack, string.rep
local t_sort, t_pack, t_unpack, t_concat, t_insert, t_remove = table.sort, table.pack, table.unpack, table.concat, table.insert, table.remove
local math_type, math_min = math.type, math.min

local string_mt = debug_getmetatable("")
string_mt.__metatable = false

local ABORT = raw_setmetatable({}, {__metatable = false})   -- the one error object nothing may catch
local used, limit, abort_kind, abort_msg = 0, 0, nil, nil
local canary = raw_setmetatable({}, {__mode = "v"})

local function abort(kind, msg)
  if abort_kind == nil then abort_kind, abort_msg = kind, msg end
  raw_error(ABORT, 0)
end

local math_tointeger = math.tointeger

local function charge(n)
  if abort_kind ~= nil then raw_error(ABORT, 0) end
  n = math_tointeger(n // 1) or (limit + 1)  -- floats (even inf/nan) become an integer cost
  used = used + n
  if used > limit then used = limit; abort("out_of_gas", "out of gas") end
end

local function hook()
  if abort_kind ~= nil then raw_error(ABORT, 0) end
  if canary[1] == nil then abort("memory", "memory limit exceeded") end
  used = used + TICK
  if used > limit then used = limit; abort("out_of_gas", "out of gas") end
end

local function is_memory_error(e)
  return e == "not enough memory"
end

local function pass_through(ok, ...)
  if not ok then
    local e = ...
    if abort_kind ~= nil or raw_rawequal(e, ABORT) then raw_error(ABORT, 0) end
    if is_memory_error(e) then abort("memory", "memory limit exceeded") end
  end
  return ok, ...
end

local function safe_pcall(f, ...)
  return pass_through(raw_pcall(f, ...))
end

local function safe_xpcall(f, handler, ...)
  local function guarded_handler(e)
    if abort_kind ~= nil or raw_rawequal(e, ABORT) or is_memory_error(e) then return e end
    return handler(e)
  end
  return pass_through(raw_xpcall(f, guarded_handler, ...))
end

local function safe_tostring(v)
  local tv = raw_type(v)
  if tv == "table" then
    local mt = debug_getmetatable(v)
    if mt ~= nil and raw_rawget(mt, "__tostring") ~= nil then return raw_tostring(v) end
    if mt ~= nil and raw_type(raw_rawget(mt, "__name")) == "string" then return raw_rawget(mt, "__name") end
    return "table"
  elseif tv == "function" or tv == "userdata" or tv == "thread" then
    return tv
  end
  return raw_tostring(v)
end

local function safe_format(fmt, ...)
  if raw_type(fmt) == "string" then charge(#fmt) end
  if raw_type(fmt) == "string" and s_find(fmt, "%%[^%a%%]*p") then
    raw_error("string.format: %p is not available", 2)
  end
  local n = raw_select("#", ...)
  local args = t_pack(...)
  for i = 1, n do
    local tv = raw_type(args[i])
    if tv == "table" or tv == "function" or tv == "userdata" or tv == "thread" then args[i] = safe_tostring(args[i]) end
  end
  return s_format(fmt, t_unpack(args, 1, n))
end

local function safe_rep(s, n, sep)
  local len = #raw_tostring(s) + (sep and #raw_tostring(sep) or 0)
  if raw_type(n) == "number" and n > 0 then charge(len * n // 16) end
  return s_rep(s, n, sep)
end

-- The real string table is what a string's metatable exposes ("x"):rep(...), so it is
-- sanitised in place: no bytecode dumps, no pattern matching (backtracking costs are not
-- metered), and the metered/wrapped rep and format.
string.dump, string.find, string.match, string.gmatch, string.gsub = nil, nil, nil, nil, nil
string.rep, string.format = safe_rep, safe_format

-- C functions whose work grows with an argument but allocates nothing are charged for it
-- (allocation-bound work is bounded by the memory cap instead).
local s_byte, s_packsize = string.byte, string.packsize

local function str_len(v)
  if raw_type(v) == "string" then return #v end
  return 0
end

string.byte = function(s, i, j)  -- pushes one value per byte of the range
  if raw_type(s) == "string" then
    local len = #s
    if (i == nil or raw_type(i) == "number") and (j == nil or raw_type(j) == "number") then
      local a = i or 1
      local b = j or a
      if a < 0 then a = len + a + 1 end
      if b < 0 then b = len + b + 1 end
      if b > len then b = len end
      if b > a then charge(b - a) end
    else
      charge(len)
    end
  end
  return s_byte(s, i, j)
end
string.pack = function(fmt, ...) charge(str_len(fmt)) return s_pack(fmt, ...) end
string.unpack = function(fmt, ...) charge(str_len(fmt)) return s_unpack(fmt, ...) end
string.packsize = function(fmt) charge(str_len(fmt)) return s_packsize(fmt) end

local function safe_tonumber(v, base)
  charge(str_len(v))
  return raw_tonumber(v, base)
end

local function safe_insert(t, ...)
  if raw_type(t) == "table" then charge(#t) end
  return t_insert(t, ...)
end

local function safe_remove(t, ...)
  if raw_type(t) == "table" then charge(#t) end
  return t_remove(t, ...)
end

local function safe_unpack(t, i, j)
  if raw_type(t) == "table" then
    local n = (j or #t) - (i or 1)
    if raw_type(n) == "number" and n > 0 then charge(n) end
  end
  return t_unpack(t, i, j)
end

local function safe_setmetatable(t, mt)
  if raw_type(mt) == "table" and (raw_rawget(mt, "__gc") ~= nil or raw_rawget(mt, "__mode") ~= nil) then
    raw_error("setmetatable: __gc and __mode are not available", 2)
  end
  return raw_setmetatable(t, mt)
end

local function default_lt(a, b) return a < b end

-- Stable bottom-up merge sort: the same comparisons in the same order on every node
-- (the C table.sort randomises its pivot for large arrays).
local function det_sort(t, lt)
  if lt == nil then lt = default_lt end
  local n = #t
  if n < 2 then return end
  local a, b = {}, {}
  for i = 1, n do a[i] = t[i] end
  local width = 1
  while width < n do
    local i = 1
    while i <= n do
      local mid = math_min(i + width, n + 1)
      local hi = math_min(i + 2 * width, n + 1)
      local l, r, k = i, mid, i
      while l < mid and r < hi do
        if lt(a[r], a[l]) then b[k] = a[r]; r = r + 1 else b[k] = a[l]; l = l + 1 end
        k = k + 1
      end
      while l < mid do b[k] = a[l]; l = l + 1; k = k + 1 end
      while r < hi do b[k] = a[r]; r = r + 1; k = k + 1 end
      i = hi
    end
    a, b = b, a
    width = width * 2
  end
  for i = 1, n do t[i] = a[i] end
end

-- pairs in a fixed order: numbers ascending, then strings (bytewise), then false, true.
local function sorted_pairs(t)
  if raw_type(t) ~= "table" then raw_error("bad argument #1 to 'pairs' (table expected)", 2) end
  local nums, strs, has_false, has_true = {}, {}, false, false
  local k = raw_next(t)
  while k ~= nil do
    local tk = raw_type(k)
    if tk == "number" then nums[#nums + 1] = k
    elseif tk == "string" then strs[#strs + 1] = k
    elseif k == false then has_false = true
    elseif k == true then has_true = true
    else raw_error("pairs: keys must be numbers, strings or booleans", 2) end
    k = raw_next(t, k)
  end
  t_sort(nums)   -- C sort with the primitive order: unique result, no instructions counted
  t_sort(strs)
  local keys = nums
  for i = 1, #strs do keys[#keys + 1] = strs[i] end
  if has_false then keys[#keys + 1] = false end
  if has_true then keys[#keys + 1] = true end
  local i = 0
  return function()
    i = i + 1
    local key = keys[i]
    if key == nil then return nil end
    return key, raw_rawget(t, key)
  end, t, nil
end

local function check_bytes(v, what)
  if raw_type(v) ~= "string" then raw_error(what .. " must be a string", 3) end
  return v
end

local function host_result(err)
  if err ~= nil then abort("limit", err) end
end

local function state_get(key)
  check_bytes(key, "key")
  charge(C_HOST + C_GET + #key * C_BYTE)
  local v, err = py_get(key)
  host_result(err)
  if v ~= nil then charge(#v * C_BYTE) end
  return v
end

local function state_put(key, value)
  check_bytes(key, "key"); check_bytes(value, "value")
  charge(C_HOST + C_PUT + (#key + #value) * C_BYTE)
  host_result(py_put(key, value))
end

local function state_del(key)
  check_bytes(key, "key")
  charge(C_HOST + C_DEL + #key * C_BYTE)
  host_result(py_del(key))
end

local function emit(topic, data)
  check_bytes(topic, "topic"); check_bytes(data, "data")
  charge(C_HOST + C_EMIT + (#topic + #data) * C_BYTE)
  host_result(py_emit(topic, data))
end

local function revert(reason)
  if reason ~= nil and raw_type(reason) ~= "string" then reason = safe_tostring(reason) end
  abort("revert", reason or "")
end

-- ABI helpers: unsigned 64-bit little-endian vectors (Lua sees them as integers; values
-- >= 2^63 appear negative, so the agreements keep every field below 2^63).
local function u64_decode(s)
  check_bytes(s, "args")
  if #s % 8 ~= 0 then raw_error("u64 vector: length is not a multiple of 8", 2) end
  charge(#s)
  local out = {}
  for i = 1, #s // 8 do out[i] = s_unpack("<i8", s, (i - 1) * 8 + 1) end
  return out
end

local function u64_encode(t)
  if raw_type(t) ~= "table" then raw_error("u64 vector: table expected", 2) end
  local parts = {}
  for i = 1, #t do
    local v = t[i]
    if math_type(v) ~= "integer" then raw_error("u64 vector: element " .. i .. " is not an integer", 2) end
    parts[i] = s_pack("<i8", v)
  end
  charge(#t * 8)
  return t_concat(parts)
end

local function copy(src, names)
  local out = {}
  for _, name in raw_ipairs(names) do out[name] = src[name] end
  return out
end

local function ro_copy(src, names)  -- a fresh table per call: writes die with the call
  return copy(src, names)
end

local function new_env()
  local env = {
    assert = raw_assert, error = raw_error, ipairs = raw_ipairs, pairs = sorted_pairs,
    pcall = safe_pcall, xpcall = safe_xpcall, select = raw_select, tonumber = safe_tonumber,
    tostring = safe_tostring, type = raw_type, rawequal = raw_rawequal, rawget = raw_rawget,
    rawset = raw_rawset, rawlen = raw_rawlen, setmetatable = safe_setmetatable,
    getmetatable = raw_getmetatable, _VERSION = _VERSION,
    state_get = state_get, state_put = state_put, state_del = state_del, emit = emit, revert = revert,
    u64 = {decode = u64_decode, encode = u64_encode},
  }
  env.string = ro_copy(string, {"byte", "char", "len", "lower", "upper", "sub", "reverse", "pack", "unpack",
                                 "packsize", "format", "rep"})
  local t = ro_copy(table, {"concat", "pack"})
  t.sort, t.insert, t.remove, t.unpack = det_sort, safe_insert, safe_remove, safe_unpack
  env.table = t
  env.math = ro_copy(math, {"abs", "ceil", "floor", "fmod", "huge", "maxinteger", "mininteger", "max", "min",
                             "modf", "pi", "sqrt", "tointeger", "type", "ult"})
  env._G = env
  return env
end

local function classify(ok, res)
  -- Returns status, message, output (status: ok | revert | out_of_gas | trap | invalid).
  if abort_kind ~= nil then
    if abort_kind == "revert" then return "revert", "", abort_msg end
    if abort_kind == "out_of_gas" then return "out_of_gas", abort_msg, "" end
    if abort_kind == "memory" then return "trap", abort_msg, "" end
    return "trap", "limit: " .. abort_msg, ""
  end
  if not ok then
    if is_memory_error(res) then return "trap", "memory limit exceeded", "" end
    if raw_type(res) == "string" then return "trap", res, "" end
    return "trap", "error (a " .. raw_type(res) .. " value)", ""
  end
  if res == nil then return "ok", "", "" end
  if raw_type(res) ~= "string" then return "trap", "entry must return a string or nil", "" end
  return "ok", "", res
end

-- Compile contract source (text only, never bytecode). Returns the chunk or nil, error.
local function compile(src)
  local f, e = raw_load(src, "=contract", "t", {})
  return f, e
end

-- Run `entry(args)` of a compiled chunk with a gas limit. Returns status, message, output, gas used.
local function run(chunk, entry, args, gas_limit)
  used, limit, abort_kind, abort_msg = BASE, gas_limit, nil, nil
  if used > limit then return "out_of_gas", "out of gas", "", limit end
  collect("stop")        -- first: from here on only an emergency collection can clear the canary
  canary[1] = {}
  local env = new_env()
  debug_setupvalue(chunk, 1, env)
  local co = co_create(function()
    chunk()
    local f = raw_rawget(env, entry)
    if raw_type(f) ~= "function" then return false end
    return true, f(args)
  end)
  debug_sethook(co, hook, "", TICK)
  local ok, found, res = co_resume(co)
  if abort_kind == nil and canary[1] == nil then
    -- an emergency collection ran (the cap was hit) and the call ended before the next tick
    abort_kind, abort_msg = "memory", "memory limit exceeded"
  end
  collect("restart")
  debug_setupvalue(chunk, 1, {})
  if ok and not found and abort_kind == nil then return "invalid", "no entry point " .. entry, "", used end
  if not ok then res = found end
  local status, msg, out = classify(ok, res)
  return status, msg, out, used
end

-- After a host-side failure (e.g. the allocator refused our own bookkeeping): back to normal.
local function reset()
  collect("restart")
end

return compile, run, reset
