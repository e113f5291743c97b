-- qcoder for Neovim: the commands exist from startup; nothing starts until require('qcoder').setup() is
-- called (see lua/qcoder/init.lua).
if vim.g.loaded_qcoder then return end
vim.g.loaded_qcoder = true

local function qcoder() return require('qcoder') end

vim.api.nvim_create_user_command('QcoderStatus', function() qcoder().show_status() end,
  { desc = 'qcoder: show the server status' })
vim.api.nvim_create_user_command('QcoderRestart', function() qcoder().restart() end,
  { desc = 'qcoder: restart the language server' })
vim.api.nvim_create_user_command('QcoderRewrite', function(args)
  qcoder().rewrite(args.line1, args.line2, args.args)
end, { desc = 'qcoder: rewrite the lines following an instruction', range = true, nargs = '*' })
vim.api.nvim_create_user_command('QcoderRefactor', function(args) qcoder().refactor(args.args) end,
  { desc = 'qcoder: apply an instruction to the whole workspace', nargs = '*' })
