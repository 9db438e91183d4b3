package server

import "strconv"

// reply names one of the sink's replies. Every reply is rendered once per Server, so a session only
// appends bytes that already exist.
type reply uint8

const (
	rGreeting reply = iota
	rHelo
	rOK
	rMailOK
	rRcptOK
	rStartData
	rBye
	rVrfy
	rExpn
	rHelp
	rUnknownCommand
	rNotImplemented
	rLineTooLong
	rHeloSyntax
	rMailSyntax
	rRcptSyntax
	rNoArgs
	rVrfySyntax
	rBdatSyntax
	rNeedHelo
	rNestedMail
	rNeedMail
	rNeedRcpt
	rNoValidRcpts
	rTooManyRcpts
	rSizeAtMail
	rTooBig
	rBadSender
	rBadRcpt
	rPathTooLong
	rLocalPartTooLong
	rDomainTooLong
	rNeedSMTPUTF8
	rParamUnknown
	rParamSyntax
	rBinaryNeedsBdat
	rDataAfterBdat
	rBareLineEnding
	rDumpFailed
	rNoService
	rGreylisted
	rFaultDisconnect
	rTooManyErrors
	rTimeout
	rTooManyConns
	rShuttingDown
	numReplies
)

type replySpec struct {
	code int
	enh  string // RFC 3463 enhanced code, or "" for replies that never carry one (220, 221, EHLO)
	text string // "%h" stands for the hostname
}

var replySpecs = [numReplies]replySpec{
	rGreeting:         {220, "", "%h ESMTP smtpbench"},
	rHelo:             {250, "", "%h"},
	rOK:               {250, "2.0.0", "Ok"},
	rMailOK:           {250, "2.1.0", "Ok"},
	rRcptOK:           {250, "2.1.5", "Ok"},
	rStartData:        {354, "", "End data with <CR><LF>.<CR><LF>"},
	rBye:              {221, "2.0.0", "Bye"},
	rVrfy:             {252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery"},
	rExpn:             {502, "5.5.1", "Error: EXPN not available"},
	rHelp:             {214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP; see RFC 5321"},
	rUnknownCommand:   {500, "5.5.2", "Error: command not recognized"},
	rNotImplemented:   {502, "5.5.1", "Error: command not implemented"},
	rLineTooLong:      {500, "5.5.2", "Error: line too long"},
	rHeloSyntax:       {501, "5.5.4", "Syntax: EHLO hostname"},
	rMailSyntax:       {501, "5.5.4", "Syntax: MAIL FROM:<address>"},
	rRcptSyntax:       {501, "5.5.4", "Syntax: RCPT TO:<address>"},
	rNoArgs:           {501, "5.5.4", "Syntax: this command takes no arguments"},
	rVrfySyntax:       {501, "5.5.4", "Syntax: VRFY address"},
	rBdatSyntax:       {501, "5.5.4", "Syntax: BDAT size [LAST]"},
	rNeedHelo:         {503, "5.5.1", "Error: send HELO/EHLO first"},
	rNestedMail:       {503, "5.5.1", "Error: nested MAIL command"},
	rNeedMail:         {503, "5.5.1", "Error: need MAIL command"},
	rNeedRcpt:         {503, "5.5.1", "Error: need RCPT command"},
	rNoValidRcpts:     {554, "5.5.1", "Error: no valid recipients"},
	rTooManyRcpts:     {452, "4.5.3", "Error: too many recipients"},
	rSizeAtMail:       {552, "5.3.4", "Error: message size exceeds fixed limit"},
	rTooBig:           {552, "5.3.4", "Error: message too big"},
	rBadSender:        {501, "5.1.7", "Bad sender address syntax"},
	rBadRcpt:          {501, "5.1.3", "Bad recipient address syntax"},
	rPathTooLong:      {501, "5.5.4", "Error: path too long"},
	rLocalPartTooLong: {553, "5.1.0", "Error: local part too long"},
	rDomainTooLong:    {553, "5.1.2", "Error: domain too long"},
	rNeedSMTPUTF8:     {553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8"},
	rParamUnknown:     {555, "5.5.4", "Error: parameter not recognized"},
	rParamSyntax:      {501, "5.5.4", "Error: bad parameter value"},
	rBinaryNeedsBdat:  {503, "5.5.1", "Error: BODY=BINARYMIME needs BDAT"},
	rDataAfterBdat:    {503, "5.5.1", "Error: DATA and BDAT cannot be mixed in a transaction"},
	rBareLineEnding:   {550, "5.6.0", "Error: bare CR or LF in message data"},
	rDumpFailed:       {451, "4.3.0", "Error: could not store the message"},
	rNoService:        {503, "5.5.1", "Error: no service here; send QUIT"},
	rGreylisted:       {450, "4.7.1", "Greylisted: try again later"},
	rFaultDisconnect:  {421, "4.4.2", "%h Error: closing the connection (injected fault)"},
	rTooManyErrors:    {421, "4.7.0", "%h Error: too many errors"},
	rTimeout:          {421, "4.4.2", "%h Error: timeout exceeded"},
	rTooManyConns:     {421, "4.3.2", "%h Error: too many connections"},
	rShuttingDown:     {421, "4.3.2", "%h Service shutting down"},
}

// replyCode is each reply's code, for stats.
func (r reply) code() int { return replySpecs[r].code }

// renderReplies renders every reply for a hostname, with or without enhanced status codes.
func renderReplies(hostname string, enhanced bool) [numReplies][]byte {
	var out [numReplies][]byte
	for i, s := range replySpecs {
		b := strconv.AppendInt(nil, int64(s.code), 10)
		b = append(b, ' ')
		if enhanced && s.enh != "" {
			b = append(b, s.enh...)
			b = append(b, ' ')
		}
		for j := 0; j < len(s.text); j++ {
			if s.text[j] == '%' && j+1 < len(s.text) && s.text[j+1] == 'h' {
				b = append(b, hostname...)
				j++
				continue
			}
			b = append(b, s.text[j])
		}
		out[i] = append(b, '\r', '\n')
	}
	return out
}

// renderEHLO renders the multi-line EHLO reply for the extensions left enabled.
func renderEHLO(hostname string, disabled Extension, maxSize int64) []byte {
	lines := []string{hostname}
	on := func(e Extension) bool { return disabled&e == 0 }
	if on(ExtPipelining) {
		lines = append(lines, "PIPELINING")
	}
	if on(ExtSize) {
		lines = append(lines, "SIZE "+strconv.FormatInt(maxSize, 10))
	}
	lines = append(lines, "VRFY")
	if on(Ext8BitMIME) {
		lines = append(lines, "8BITMIME")
	}
	if on(ExtSMTPUTF8) {
		lines = append(lines, "SMTPUTF8")
	}
	if on(ExtEnhancedStatusCodes) {
		lines = append(lines, "ENHANCEDSTATUSCODES")
	}
	if on(ExtChunking) {
		lines = append(lines, "CHUNKING")
		if on(Ext8BitMIME) {
			lines = append(lines, "BINARYMIME")
		}
	}
	var b []byte
	for i, l := range lines {
		sep := byte('-')
		if i == len(lines)-1 {
			sep = ' '
		}
		b = append(b, '2', '5', '0', sep)
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	return b
}
