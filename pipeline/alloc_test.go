//go:build !race

package pipeline

import "testing"

// An established connection allocates nothing per transaction: rendering the commands, writing
// them and the body, and reading and parsing every reply.
func TestSendAllocatesNothing(t *testing.T) {
	m := testMessage(3)
	for _, tc := range cannedCases {
		replies := tc.replies
		if tc.name != "PIPELINING+BDAT" { // three recipients: two more RCPT replies
			replies = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n250 2.0.0 Ok\r\n"
		} else {
			replies = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
		}
		c := cannedConn(t, tc.ehlo, tc.opts, replies)
		var tr Trace
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.Send(m, &tr); err != nil || !tr.Delivered || tr.Accepted != 3 {
				t.Fatalf("%v %+v", err, tr)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.2f allocations per transaction, want 0", tc.name, allocs)
		}
	}
}
