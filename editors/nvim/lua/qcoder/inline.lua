-- Inline completions as ghost text: asked for as you type (textDocument/inlineCompletion, triggerKind
-- Automatic) or on demand (Invoked: up to three alternatives), drawn while they stream in through
-- `qcoder/inlineCompletionPartial`, and accepted whole, by word or by line. Typing the suggestion's own
-- next characters keeps the rest of it on screen; moving away, leaving insert mode or dismissing clears it.
local ghost = require('qcoder.ghost')
local position = require('qcoder.position')
local server = require('qcoder.server')

local M = {}

local AUTOMATIC, INVOKED = 2, 1
local REQUEST_CANCELLED = -32800

M.hl = 'Comment'
-- Counters, for :QcoderStatus and the tests.
M.stats = { requests = 0, partials_shown = 0, replies = 0, typed_through = 0, accepted = 0 }
M.last_accepted = nil  -- the text the last accept inserted

local pending = nil    -- the request in flight: { id, client, bufnr, row, col, tick }
local items = nil      -- the last reply's suggestions (ghost texts at the cursor) and which one is shown
local shown_tick = nil -- b:changedtick when the ghost was drawn

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return vim.api.nvim_get_current_buf(), pos[1] - 1, pos[2]
end

local function draw(bufnr, row, col, text)
  ghost.show(bufnr, row, col, text, M.hl)
  shown_tick = vim.api.nvim_buf_get_changedtick(bufnr)
end

local function still_at(req)
  local bufnr, row, col = cursor()
  return bufnr == req.bufnr and row == req.row and col == req.col
    and vim.api.nvim_buf_get_changedtick(bufnr) == req.tick
end

function M.cancel()
  if pending then
    pcall(pending.client.cancel_request, pending.id)
    pending = nil
  end
end

function M.clear()
  M.cancel()
  ghost.clear()
  items = nil
end

function M.visible() return ghost.shown ~= nil end

-- The ghost text an item adds at the cursor: its insertText less what is already typed of its range.
local function ghost_text(req, item, encoding)
  local text = type(item.insertText) == 'table' and item.insertText.value or item.insertText
  if type(text) ~= 'string' then return nil end
  if not item.range then return text end
  local srow, scol = position.from_lsp(req.bufnr, item.range.start, encoding)
  if srow ~= req.row or scol > req.col then return nil end
  local line = vim.api.nvim_buf_get_lines(req.bufnr, req.row, req.row + 1, false)[1] or ''
  local typed = line:sub(scol + 1, req.col)
  if text:sub(1, #typed) ~= typed then return nil end
  return text:sub(#typed + 1)
end

local function on_reply(req, err, result)
  if pending ~= req then return end
  pending = nil
  if err then
    if err.code ~= REQUEST_CANCELLED then
      vim.notify_once('qcoder: ' .. tostring(err.message), vim.log.levels.WARN)
    end
    return
  end
  M.stats.replies = M.stats.replies + 1
  if not still_at(req) then return end
  local list = {}
  for _, item in ipairs(result and result.items or result or {}) do
    local text = ghost_text(req, item, req.client.offset_encoding or 'utf-16')
    if text and text ~= '' then table.insert(list, text) end
  end
  if #list == 0 then
    ghost.clear()
    items = nil
    return
  end
  items = { list = list, index = 1 }
  draw(req.bufnr, req.row, req.col, list[1])
end

-- Asks for a completion at the cursor; `kind`: 1 Invoked, 2 Automatic.
function M.request(kind)
  local bufnr, row, col = cursor()
  local client = server.client(bufnr)
  if not client then return end
  M.cancel()
  local encoding = client.offset_encoding or 'utf-16'
  local req = { client = client, bufnr = bufnr, row = row, col = col, tick = vim.api.nvim_buf_get_changedtick(bufnr) }
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = position.to_lsp(bufnr, row, col, encoding),
    context = { triggerKind = kind or AUTOMATIC },
  }
  pending = req
  local ok, id = client.request('textDocument/inlineCompletion', params, function(err, result)
    on_reply(req, err, result)
  end, bufnr)
  if not ok then
    pending = nil
    return
  end
  req.id = id
  M.stats.requests = M.stats.requests + 1
end

function M.trigger() M.request(INVOKED) end

-- qcoder/inlineCompletionPartial: the text so far of the request in flight.
function M.on_partial(params)
  local req = pending
  if not req or params.id ~= req.id or params.uri ~= vim.uri_from_bufnr(req.bufnr) or not still_at(req) then return end
  if type(params.text) ~= 'string' or params.text == '' then return end
  M.stats.partials_shown = M.stats.partials_shown + 1
  draw(req.bufnr, req.row, req.col, params.text)
end

-- Inserts `text` at the cursor and leaves the cursor after it.
local function insert(text)
  local bufnr, row, col = cursor()
  local lines = vim.split(text, '\n', { plain = true })
  vim.api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local end_row = row + #lines - 1
  local end_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { end_row + 1, end_col })
end

-- The part of `text` an accept takes: 'all', 'word' (up to the end of the next word) or 'line' (through
-- the end of the current line; a leading line break takes the next line with it).
local function part(text, how)
  if how == 'word' then
    return text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+') or text
  elseif how == 'line' then
    local first = text:match('^\n?[^\n]*') or text
    if #first < #text and text:sub(#first + 1, #first + 1) == '\n' then first = first .. '\n' end
    return first
  end
  return text
end

-- Accepts the shown suggestion (or a part of it; the rest stays shown). False when nothing was shown.
function M.accept(how)
  local shown = ghost.shown
  if not shown then return false end
  local bufnr, row, col = cursor()
  if bufnr ~= shown.bufnr or row ~= shown.row or col ~= shown.col then
    M.clear()
    return false
  end
  local take = part(shown.text, how or 'all')
  local rest = shown.text:sub(#take + 1)
  M.cancel()
  ghost.clear()
  insert(take)
  M.last_accepted = take
  M.stats.accepted = M.stats.accepted + 1
  if rest ~= '' then
    local b, r, c = cursor()
    items = { list = { rest }, index = 1 }
    draw(b, r, c, rest)
  else
    items = nil
  end
  return true
end

-- Cycles the alternatives of the last reply.
function M.cycle(step)
  if not items or #items.list < 2 or not ghost.shown then return end
  items.index = (items.index - 1 + step) % #items.list + 1
  local s = ghost.shown
  draw(s.bufnr, s.row, s.col, items.list[items.index])
end

-- TextChangedI: keep what still matches of the suggestion, then ask again.
function M.on_text_changed(auto_trigger)
  local shown = ghost.shown
  if shown and vim.api.nvim_buf_get_changedtick(shown.bufnr) ~= shown_tick then  -- not our own accept
    local bufnr, row, col = cursor()
    local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
    local typed = (bufnr == shown.bufnr and row == shown.row and col > shown.col) and line:sub(shown.col + 1, col) or nil
    if typed and #typed < #shown.text and shown.text:sub(1, #typed) == typed then
      M.stats.typed_through = M.stats.typed_through + 1
      local rest = shown.text:sub(#typed + 1)
      items = { list = { rest }, index = 1 }
      draw(bufnr, row, col, rest)
    else
      ghost.clear()
      items = nil
    end
  end
  if auto_trigger then M.request(AUTOMATIC) end
end

-- CursorMovedI: moving away from the suggestion (not by typing) drops it.
function M.on_cursor_moved()
  local shown = ghost.shown
  if not shown then return end
  local bufnr, row, col = cursor()
  if vim.api.nvim_buf_get_changedtick(bufnr) ~= shown_tick then return end  -- a text change: TextChangedI decides
  if bufnr ~= shown.bufnr or row ~= shown.row or col ~= shown.col then M.clear() end
end

return M
