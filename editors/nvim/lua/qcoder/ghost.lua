-- Ghost text: a suggestion drawn at the cursor with extmarks, not in the buffer. The first line goes at the
-- cursor (inline virtual text on Neovim 0.10+; on older ones an overlay that redraws the rest of the line
-- after it), the others as virtual lines below, with the rest of the cursor's line after the last one.
local M = {}

M.ns = vim.api.nvim_create_namespace('qcoder_ghost')
local has_inline = vim.fn.has('nvim-0.10') == 1

-- What is drawn now: { bufnr, row, col, text } or nil.
M.shown = nil

function M.clear()
  if M.shown and vim.api.nvim_buf_is_valid(M.shown.bufnr) then
    vim.api.nvim_buf_clear_namespace(M.shown.bufnr, M.ns, 0, -1)
  end
  M.shown = nil
end

-- Draws `text` at (row, col) of `bufnr` (col: byte column where it would be inserted).
function M.show(bufnr, row, col, text, hl)
  M.clear()
  if text == nil or text == '' then return end
  local lines = vim.split(text, '\n', { plain = true })
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  col = math.min(col, #line)
  local rest = line:sub(col + 1)
  local mark = { hl_mode = 'combine' }
  if has_inline then
    mark.virt_text = { { lines[1], hl } }
    mark.virt_text_pos = 'inline'
  elseif #lines == 1 then
    -- Overlay the suggestion and then the rest of the line, as they will read once accepted.
    mark.virt_text = { { lines[1], hl }, { rest, 'Normal' } }
    mark.virt_text_pos = 'overlay'
  else
    -- The rest of the line moves below: pad so no character of it shows through the overlay.
    local pad = math.max(0, vim.fn.strdisplaywidth(rest) - vim.fn.strdisplaywidth(lines[1]))
    mark.virt_text = { { lines[1] .. string.rep(' ', pad), hl } }
    mark.virt_text_pos = 'overlay'
  end
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      local chunks = { { lines[i], hl } }
      if i == #lines and rest ~= '' and not has_inline then table.insert(chunks, { rest, 'Normal' }) end
      table.insert(mark.virt_lines, chunks)
    end
  end
  vim.api.nvim_buf_set_extmark(bufnr, M.ns, row, col, mark)
  M.shown = { bufnr = bufnr, row = row, col = col, text = text }
end

return M
