-- statekit RedisBackend: one commit of RFC 6902 ops to one store copy, atomically.
--
-- KEYS[1] the scope's hash (fields "d:<store>" = JSON document, "v:<store>" = version)
-- KEYS[2] the store copy's stream (entries with id 0-<version>, field "o" = applied ops)
-- ARGV: store, expected version ("" = none), ops JSON, initial JSON, ttl ms ("0" = none),
--       stream length, notice channel, scope key
--
-- Returns {1, version} | {0, current version} (conflict) | {-1, kind, message, path, part}.
-- Nothing is written unless every op applied: the document is decoded, changed in
-- memory and only then stored. The JSON reader and writer below (not cjson's, which
-- cannot tell [] from {} and prints 14 digits) keep key order, keep numbers as the
-- text they came as, and so round-trip what Python wrote. The op semantics follow
-- statekit/_patch.py; tests/test_backends_redis.py runs one case table on both.

local NULL = {}

-- ------------------------------------------------------------------ JSON

local function newobj() return {o = true, keys = {}, map = {}} end
local function newarr() return {a = true, n = 0} end

local function objset(obj, k, v)
  if obj.map[k] == nil then obj.keys[#obj.keys + 1] = k end
  obj.map[k] = v
end

local function objdel(obj, k)
  obj.map[k] = nil
  for i = 1, #obj.keys do
    if obj.keys[i] == k then table.remove(obj.keys, i) return end
  end
end

local function decode(str)
  local pos = 1
  local find, sub = string.find, string.sub
  local function ws() pos = find(str, '[^ \t\r\n]', pos) or (#str + 1) end
  local function bad() error({kind = 'patch', msg = 'malformed JSON at byte ' .. pos}) end
  local function str_token()
    local i, escaped = pos + 1, false
    while true do
      local j = find(str, '["\\]', i)
      if not j then bad() end
      if sub(str, j, j) == '"' then
        local raw = sub(str, pos, j)
        pos = j + 1
        if escaped then return cjson.decode(raw) end
        return sub(raw, 2, -2)
      end
      escaped = true
      i = j + 2
    end
  end
  local value
  value = function()
    ws()
    local c = sub(str, pos, pos)
    if c == '{' then
      pos = pos + 1
      local obj = newobj()
      ws()
      if sub(str, pos, pos) == '}' then pos = pos + 1 return obj end
      while true do
        ws()
        if sub(str, pos, pos) ~= '"' then bad() end
        local k = str_token()
        ws()
        if sub(str, pos, pos) ~= ':' then bad() end
        pos = pos + 1
        objset(obj, k, value())
        ws()
        c = sub(str, pos, pos)
        pos = pos + 1
        if c == '}' then return obj end
        if c ~= ',' then bad() end
      end
    elseif c == '[' then
      pos = pos + 1
      local arr = newarr()
      ws()
      if sub(str, pos, pos) == ']' then pos = pos + 1 return arr end
      while true do
        arr.n = arr.n + 1
        arr[arr.n] = value()
        ws()
        c = sub(str, pos, pos)
        pos = pos + 1
        if c == ']' then return arr end
        if c ~= ',' then bad() end
      end
    elseif c == '"' then
      return str_token()
    elseif sub(str, pos, pos + 3) == 'true' then
      pos = pos + 4 return true
    elseif sub(str, pos, pos + 4) == 'false' then
      pos = pos + 5 return false
    elseif sub(str, pos, pos + 3) == 'null' then
      pos = pos + 4 return NULL
    end
    local s, e = find(str, '^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
    if not s then bad() end
    local text = sub(str, s, e)
    pos = e + 1
    return {n = tonumber(text), s = text}
  end
  local result = value()
  ws()
  if pos <= #str then bad() end
  return result
end

local function encode(v, out)
  local t = type(v)
  if t == 'string' then
    out[#out + 1] = cjson.encode(v)
  elseif t == 'boolean' then
    out[#out + 1] = v and 'true' or 'false'
  elseif v == NULL then
    out[#out + 1] = 'null'
  elseif v.o then
    out[#out + 1] = '{'
    for i, k in ipairs(v.keys) do
      if i > 1 then out[#out + 1] = ',' end
      out[#out + 1] = cjson.encode(k)
      out[#out + 1] = ':'
      encode(v.map[k], out)
    end
    out[#out + 1] = '}'
  elseif v.a then
    out[#out + 1] = '['
    for i = 1, v.n do
      if i > 1 then out[#out + 1] = ',' end
      encode(v[i], out)
    end
    out[#out + 1] = ']'
  else
    out[#out + 1] = v.s
  end
end

local function dumps(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

local function jtype(v)
  local t = type(v)
  if t == 'string' then return 'string' end
  if t == 'boolean' then return 'boolean' end
  if v == NULL then return 'null' end
  if v.o then return 'object' end
  if v.a then return 'array' end
  return 'number'
end

local function is_long_int(s) return #s > 15 and not string.find(s, '[.eE]') end

local function equal(x, y)
  local kind = jtype(x)
  if kind ~= jtype(y) then return false end
  if kind == 'object' then
    if #x.keys ~= #y.keys then return false end
    for _, k in ipairs(x.keys) do
      local other = y.map[k]
      if other == nil or not equal(x.map[k], other) then return false end
    end
    return true
  elseif kind == 'array' then
    if x.n ~= y.n then return false end
    for i = 1, x.n do
      if not equal(x[i], y[i]) then return false end
    end
    return true
  elseif kind == 'number' then
    if x.s == y.s then return true end
    if is_long_int(x.s) or is_long_int(y.s) then return false end
    return x.n == y.n
  end
  return x == y
end

local function deepcopy(v)
  if type(v) ~= 'table' or v == NULL or not (v.o or v.a) then return v end
  if v.o then
    local obj = newobj()
    for _, k in ipairs(v.keys) do objset(obj, k, deepcopy(v.map[k])) end
    return obj
  end
  local arr = newarr()
  for i = 1, v.n do arr[i] = deepcopy(v[i]) end
  arr.n = v.n
  return arr
end

-- ------------------------------------------------------------------ paths

local function escape(part) return (string.gsub(string.gsub(part, '~', '~0'), '/', '~1')) end

local function format(parts)
  local out = {}
  for i = 1, #parts do out[i] = '/' .. escape(parts[i]) end
  return table.concat(out)
end

local function path_error(parts, part, reason)
  error({kind = 'path', path = format(parts), part = part, msg = reason})
end

local function parse(path, number, name)
  if path == '' then return {} end
  if string.sub(path, 1, 1) == '/' then path = string.sub(path, 2) end
  local parts, start = {}, 1
  while true do
    local slash = string.find(path, '/', start, true)
    local token = string.sub(path, start, (slash or 0) - 1)
    if string.find(token, '~', 1, true) then
      local at = string.find(token, '~', 1, true)
      while at do
        local nxt = string.sub(token, at + 1, at + 1)
        if nxt ~= '0' and nxt ~= '1' then
          error({kind = 'path', path = '/' .. path, part = token, msg =
            "invalid escape: '~' must be followed by '0' (for '~') or '1' (for '/') (op "
            .. number .. ': ' .. name .. ')'})
        end
        at = string.find(token, '~', at + 2, true)
      end
      token = string.gsub(string.gsub(token, '~1', '/'), '~0', '~')
    end
    parts[#parts + 1] = token
    if not slash then return parts end
    start = slash + 1
  end
end

local function index(parts, part, length, end_ok)
  if part == '-' then
    if end_ok then return length end
    path_error(parts, part, "'-' (past the end of the array) names no element; only 'add' can use it")
  end
  if not string.find(part, '^%d+$') or (string.sub(part, 1, 1) == '0' and #part > 1) then
    path_error(parts, part, "'" .. part .. "' is not a valid array index")
  end
  local limit = end_ok and length or length - 1
  if #part > 15 or tonumber(part) > limit then
    path_error(parts, part, 'index ' .. part .. ' out of range (length ' .. length .. ')')
  end
  return tonumber(part)
end

local function step(node, part, parts)
  local kind = jtype(node)
  if kind == 'object' then
    local child = node.map[part]
    if child == nil then path_error(parts, part, "no key '" .. part .. "' in object") end
    return child
  elseif kind == 'array' then
    return node[index(parts, part, node.n, false) + 1]
  end
  path_error(parts, part, 'cannot index into ' .. kind)
end

local function get(doc, parts)
  local node = doc
  for i = 1, #parts do node = step(node, parts[i], parts) end
  return node
end

local function parent_of(doc, parts)
  local node = doc
  for i = 1, #parts - 1 do node = step(node, parts[i], parts) end
  return node
end

-- ------------------------------------------------------------------ ops

local function op_add(doc, parts, value)
  if #parts == 0 then return value, parts end
  local parent, last = parent_of(doc, parts), parts[#parts]
  local kind = jtype(parent)
  if kind == 'object' then
    objset(parent, last, value)
    return doc, parts
  elseif kind == 'array' then
    local at = index(parts, last, parent.n, true)
    for i = parent.n, at + 1, -1 do parent[i + 1] = parent[i] end
    parent[at + 1] = value
    parent.n = parent.n + 1
    local concrete = {}
    for i = 1, #parts - 1 do concrete[i] = parts[i] end
    concrete[#parts] = tostring(at)
    return doc, concrete
  end
  path_error(parts, last, 'cannot index into ' .. kind)
end

local function op_remove(doc, parts, name, number)
  if #parts == 0 then
    error({kind = 'patch', msg = 'op ' .. number .. ' (' .. name .. ") at '': "
      .. 'cannot remove the whole document (replace it instead)'})
  end
  local parent, last = parent_of(doc, parts), parts[#parts]
  local kind = jtype(parent)
  if kind == 'object' then
    local old = parent.map[last]
    if old == nil then path_error(parts, last, "no key '" .. last .. "' in object") end
    objdel(parent, last)
    return old
  elseif kind == 'array' then
    local at = index(parts, last, parent.n, false) + 1
    local old = parent[at]
    for i = at, parent.n - 1 do parent[i] = parent[i + 1] end
    parent[parent.n] = nil
    parent.n = parent.n - 1
    return old
  end
  path_error(parts, last, 'cannot index into ' .. kind)
end

local function op_replace(doc, parts, value)
  if #parts == 0 then return value end
  local parent, last = parent_of(doc, parts), parts[#parts]
  local kind = jtype(parent)
  if kind == 'object' then
    if parent.map[last] == nil then path_error(parts, last, "no key '" .. last .. "' in object") end
    parent.map[last] = value
    return doc
  elseif kind == 'array' then
    parent[index(parts, last, parent.n, false) + 1] = value
    return doc
  end
  path_error(parts, last, 'cannot index into ' .. kind)
end

local KNOWN = {add = true, remove = true, replace = true, move = true, copy = true, test = true}
local WITH_VALUE = {add = true, replace = true, test = true}

local function patch_error(msg) error({kind = 'patch', msg = msg}) end

local function member_pointer(op, number, name, member)
  local pointer = op.map[member]
  if pointer == nil then patch_error('op ' .. number .. ' (' .. name .. "): missing member '" .. member .. "'") end
  if type(pointer) ~= 'string' then
    patch_error('op ' .. number .. ' (' .. name .. "): '" .. member
      .. "' must be a JSON Pointer string, not " .. jtype(pointer))
  end
  return parse(pointer, number, name)
end

local function starts_with(parts, prefix)
  if #prefix >= #parts then return false end
  for i = 1, #prefix do
    if parts[i] ~= prefix[i] then return false end
  end
  return true
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function applied_op(name, parts, value, source)
  local rec = newobj()
  objset(rec, 'op', name)
  if source then objset(rec, 'from', format(source)) end
  objset(rec, 'path', format(parts))
  if value ~= nil then objset(rec, 'value', value) end
  return rec
end

local function apply(doc, ops)
  if jtype(ops) ~= 'array' then patch_error('a JSON Patch is a list of operations, not ' .. jtype(ops)) end
  local applied = newarr()
  local function record(rec)
    applied.n = applied.n + 1
    applied[applied.n] = dumps(rec)  -- now: later ops may change the value in place
  end
  for i = 1, ops.n do
    local number, op = i - 1, ops[i]
    if jtype(op) ~= 'object' then patch_error('op ' .. number .. ': an operation is an object, not ' .. jtype(op)) end
    local name = op.map['op']
    if name == nil then patch_error('op ' .. number .. ": missing member 'op'") end
    if type(name) ~= 'string' or not KNOWN[name] then
      patch_error('op ' .. number .. ': unknown op (expected add, remove, replace, move, copy or test)')
    end
    local parts = member_pointer(op, number, name, 'path')
    local source = nil
    if name == 'move' or name == 'copy' then source = member_pointer(op, number, name, 'from') end
    local value = op.map['value']
    if WITH_VALUE[name] and value == nil then
      patch_error('op ' .. number .. ' (' .. name .. ') at ' .. format(parts) .. ": missing member 'value'")
    end
    if name == 'move' and starts_with(parts, source) then
      patch_error('op ' .. number .. " (move): cannot move '" .. format(source) .. "' into its own child '"
        .. format(parts) .. "'")
    end
    local ok, err = pcall(function()
      if name == 'add' then
        local at
        doc, at = op_add(doc, parts, value)
        record(applied_op('add', at, value))
      elseif name == 'remove' then
        op_remove(doc, parts, name, number)
        record(applied_op('remove', parts))
      elseif name == 'replace' then
        doc = op_replace(doc, parts, value)
        record(applied_op('replace', parts, value))
      elseif name == 'test' then
        if not equal(get(doc, parts), value) then
          error({kind = 'test', msg = 'op ' .. number .. ' (test) at ' .. "'" .. format(parts) .. "'"
            .. ': the value is not equal to the expected value'})
        end
      else
        local moved = get(doc, source)
        if name == 'move' then
          if not same(source, parts) then
            op_remove(doc, source, name, number)
            local at
            doc, at = op_add(doc, parts, moved)
            record(applied_op('move', at, nil, source))
          end
        else
          local at
          doc, at = op_add(doc, parts, deepcopy(moved))
          record(applied_op('copy', at, nil, source))
        end
      end
    end)
    if not ok then
      if type(err) == 'table' and err.kind == 'path' then
        err.msg = err.msg .. ' (op ' .. number .. ': ' .. name .. ')'
      end
      error(err)
    end
  end
  if jtype(doc) ~= 'object' then patch_error('the document must stay an object') end
  return doc, '[' .. table.concat(applied, ',', 1, applied.n) .. ']'
end

-- ------------------------------------------------------------------ commit

local hash, stream = KEYS[1], KEYS[2]
local store, expected, ops_json, initial = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, maxlen, channel, scope = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]

local current = tonumber(redis.call('HGET', hash, 'v:' .. store) or '0')
if expected ~= '' and tonumber(expected) ~= current then
  return {0, current}
end

local ok, result, applied = pcall(function()
  local stored = redis.call('HGET', hash, 'd:' .. store)
  local doc = decode(current == 0 and initial or (stored or initial))
  return apply(doc, decode(ops_json))
end)
if not ok then
  local err = result
  if type(err) ~= 'table' then return {-1, 'patch', tostring(err), '', ''} end
  return {-1, err.kind, err.msg, err.path or '', err.part or ''}
end

local version = current + 1
if current == 0 then
  redis.call('DEL', stream)  -- a log outliving its document (expired apart) restarts
end
redis.call('HSET', hash, 'd:' .. store, dumps(result), 'v:' .. store, version)
redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '0-' .. version, 'o', applied)
if ttl > 0 then
  redis.call('PEXPIRE', hash, ttl)
  redis.call('PEXPIRE', stream, ttl)
end
redis.call('PUBLISH', channel, scope .. '\n' .. store .. '\n' .. version)
return {1, version}
